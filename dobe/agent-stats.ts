/** Counters every agent of one process adds to; the fleet sums them across processes. */
export interface AgentStats {
  /** Agents holding an open MySQL connection (the god-query side). */
  connected: number;
  godQueries: number;
  eventsExecuted: number;
  /** Claims that found the event already taken: proof the claim guards double execution. */
  claimsLost: number;
  errors: number;
  reconnects: number;
  /** Agents whose event source is the god query right now. */
  onGodQuery: number;
  /** Agents whose event source is their region's Event Router right now. */
  onRouter: number;
  /** Event-source switches (either direction). */
  switches: number;
  /** Open event streams to a router. */
  routerStreams: number;
  /** Events received over router streams (duplicates of held events not counted). */
  routerEvents: number;
}

export function createAgentStats(): AgentStats {
  return {
    connected: 0,
    godQueries: 0,
    eventsExecuted: 0,
    claimsLost: 0,
    errors: 0,
    reconnects: 0,
    onGodQuery: 0,
    onRouter: 0,
    switches: 0,
    routerStreams: 0,
    routerEvents: 0,
  };
}
