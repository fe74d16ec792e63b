import type { Connection } from 'mysql2/promise';
import type { DbConfig } from '../lib/db/config.ts';
import type { HostState } from '../domain/completion.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { AgentStats } from './agent-stats.ts';
import type { HeldEvent } from './router-client.ts';

/**
 * The seam between the DOBE agent and the legacy way it found work: polling
 * MySQL (the god query). The agent itself only knows the post-migration
 * source, its region's Event Router; a polling mode is injected by the
 * wiring that still runs the legacy stages (legacy/dobe/god-query-mode.ts),
 * so deleting `legacy/` leaves an agent that takes its events from routers.
 */

/** What a polling mode may use of the agent it runs in. */
export interface AgentCore {
  readonly serverId: number;
  /** The agent's MySQL settings, for a mode that reaches MySQL its own way (through a shared pool). */
  readonly db: DbConfig;
  readonly stats: AgentStats;
  readonly log: Logger;
  /** Simulated time spent executing one event. */
  readonly workMs: number;
  /** Poll interval bounds; each wait is drawn uniformly between them. */
  readonly pollIntervalMs: { min: number; max: number };
  /** How often host state is written back to the `servers` row. */
  readonly hostReportIntervalMs: number;
  /** In dual mode, polls between reads of the `event-delivery` row (1: every poll). */
  readonly modeCheckEvery: number;
  /** After a switch back from the router, how long running events are re-read at every mode check. */
  readonly runningRecheckMs: number;
  /** Whether the agent follows the cutover (has a router to go to). */
  readonly dual: boolean;
  now(): Date;
  random(): number;
  /** Whether the agent is closing: stop between events. */
  closed(): boolean;
  host(): HostState;
  setHost(next: HostState): void;
  /** Whether the agent holds its MySQL connection now. */
  connected(): boolean;
  /** The agent's own MySQL connection, opened (host row re-read) when it holds none. */
  connection(): Promise<Connection>;
  /** Closes the agent's MySQL connection (after a failure, or before the router takes over). */
  dropConnection(): Promise<void>;
  /** Reads the `event-delivery` row over `conn`: whether this host is routed to its router now. */
  readRouted(conn: Connection): Promise<boolean>;
  /** The same decision from an `event-delivery` row the mode read itself (FEATURE_ROW_SQL, with its own query). */
  routedBy(row: Record<string, unknown> | undefined): boolean;
  /** Hands the agent to its router: `carry` holds events executed but not yet recorded. */
  enterRouter(carry: HeldEvent[]): Promise<void>;
}

/** A connection lent by a polling mode for one short read; given back with `release`, or `destroy` after an error. */
export interface LeasedConnection {
  conn: Connection;
  release(): void;
  destroy(): void;
}

/** A running polling mode of one agent. */
export interface PollingMode {
  /** The agent's own connection allows several statements per query (the mode sends its reads as one packet). */
  readonly multipleStatements?: boolean;
  /**
   * Where the mode shares connections (a pooler in front of MySQL): lends one for the agent's own
   * reads at connect, so the agent never opens a connection of its own. Absent: the agent holds one.
   */
  lease?(): Promise<LeasedConnection>;
  /** Starts polling after the agent's first connect (spread over one interval so a fleet does not stampede). */
  start(): void;
  /** Polls again after the router sent the host back; `leftover` are events held from the router, to finish first. */
  resume(leftover: HeldEvent[]): void;
  /** Stops polling and waits for the poll in hand. Idempotent. */
  close(): Promise<void>;
}

/**
 * Makes an agent's polling mode.
 *
 * @example
 *   // The wiring (stack/, cli/) passes the legacy mode, godQueryMode of the god-query-mode module:
 *   createDobeAgent({ serverId: 7, db, polling: godQueryMode });
 */
export type PollingModeFactory = (core: AgentCore) => PollingMode;

/**
 * A polling mode named by module and export, for processes that import it
 * themselves (the fleet's workers): only the wiring that runs the legacy
 * stages names it, so the agent and the fleet never import `legacy/`.
 *
 * @example
 *   createFleet({ db, serverIds, pollingMode: GOD_QUERY_MODE }); // GOD_QUERY_MODE from legacy/dobe/god-query-mode.ts
 */
export interface PollingModeRef {
  /** A file URL (import.meta.url of the module). */
  module: string;
  export: string;
  /** With args, the export makes the mode: `export(args)` returns the PollingModeFactory (args cross a process boundary as JSON). */
  args?: Record<string, string | number | boolean>;
}

/** Loads a PollingModeRef in this process. */
export async function loadPollingMode(ref: PollingModeRef): Promise<PollingModeFactory> {
  const mod = (await import(ref.module)) as Record<string, unknown>;
  const exported = mod[ref.export];
  if (typeof exported !== 'function') throw invalidOption('pollingMode', ref, 'a module and the name of its polling mode export');
  if (ref.args === undefined) return exported as PollingModeFactory;
  const factory = (exported as (args: PollingModeRef['args']) => unknown)(ref.args);
  if (typeof factory !== 'function') throw invalidOption('pollingMode', ref, 'an export that makes a polling mode from its args');
  return factory as PollingModeFactory;
}
