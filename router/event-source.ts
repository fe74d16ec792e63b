/**
 * Where the router reads its region's events and writes claims and
 * completions. Two implementations: the Harpoon source (router/harpoon-source.ts,
 * what lives on) and the MySQL-polling source of the legacy and transition
 * stages (legacy/router/mysql-source.ts, passed in by the wiring as
 * `legacySource`). The router core owns the streams, the cutover state, the
 * HTTP routes and the switch between sources; a source only finds work,
 * claims it, hands claimed rows to `deliver`, and records acks.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { Logger } from '../lib/logger.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import type { RouterMetrics } from './metrics.ts';
import type { AckItem } from './protocol.ts';
import type { RouterSettings } from './options.ts';
import type { StreamHub } from './streams.ts';

/** The names recorded in metrics and stats: the switch rule of router/README.md. */
export type EventSourceName = 'mysql' | 'harpoon';

export type AckOutcome = 'acked' | 'duplicate' | 'not_claimed' | 'not_found';

export interface EventSource {
  readonly name: EventSourceName;
  /** Becomes the router's source, between two polls. Throwing leaves the previous source in place (retried next poll). */
  activate(): Promise<void>;
  /** Stops being the source (acks on it have drained). */
  deactivate(): Promise<void>;
  /** One turn of the router's loop while this is the source; true when more work is waiting (the next turn comes at once). */
  tick(): Promise<boolean>;
  /** One turn of the loop while another source is current (work still owed to this one, if any). */
  idle(): void;
  /** A host's stream opened here (after the previous one, if any, was dropped). */
  streamOpened(serverId: number): void;
  /** Claims on the wire: a routing change waits for them, so a host hears every claim made for it before a switch. */
  claiming(): boolean;
  /** Rows of acknowledged events this process does not hold in memory (events of other hosts included: the caller checks ownership). */
  readAckRows(eventIds: number[]): Promise<AgentEvent[]>;
  /**
   * Records one acknowledged event exactly once (the caller runs one completion per event at a time).
   * `delivered`: this process wrote the event to its host's stream, so it may still be pending (pushed
   * before its claim got through): the source claims it now rather than refuse the ack. An event never
   * delivered must be running to be completed.
   */
  complete(row: AgentEvent, item: AckItem, delivered: boolean): Promise<AckOutcome>;
  /** Work to finish before the router's pool closes (e.g. completions owed to Harpoon). */
  close(): Promise<void>;
}

/** What the router gives a source. */
export interface SourceContext {
  settings: RouterSettings;
  regionId: number;
  pool: Pool;
  hub: StreamHub;
  metric: RouterMetrics;
  log: Logger;
  /** Counts statements sent to MySQL (router_db_queries_total{query}). */
  countQuery(query: string, n?: number): void;
  /** Runs `fn` on a pool connection outside the poll's reserved one: acks never queue the poll behind them. */
  withAckConnection<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T>;
  /** Runs `fn` with an ack slot (no connection taken): for statements sent through the pool itself. */
  withAckSlot<T>(fn: () => Promise<T>): Promise<T>;
  /** Called when `claiming()` turns false: the router applies a routing change it deferred. */
  claimsSettled(): void;
  /** Whether the router is closing. */
  closed(): boolean;
}

/**
 * Creates a source; the router calls it once, after reading its region id.
 *
 * @example
 *   createEventRouter({ db, region, secret, legacySource: createMysqlEventSource });
 */
export type EventSourceFactory = (context: SourceContext) => EventSource;
