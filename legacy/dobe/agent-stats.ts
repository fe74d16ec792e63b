/** Counters every agent of one process adds to; the fleet sums them across processes. */
export interface AgentStats {
  connected: number;
  godQueries: number;
  eventsExecuted: number;
  /** Claims that found the event already taken: proof the claim guards double execution. */
  claimsLost: number;
  errors: number;
  reconnects: number;
}

export function createAgentStats(): AgentStats {
  return { connected: 0, godQueries: 0, eventsExecuted: 0, claimsLost: 0, errors: 0, reconnects: 0 };
}
