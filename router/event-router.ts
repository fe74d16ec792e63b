/**
 * The Event Router: one process (or several) per region, polling MySQL on
 * behalf of the region's hypervisors and pushing each event to the agent
 * it belongs to over one Server-Sent-Events stream. Why SSE, why a pending
 * set rather than an id cursor, and how redelivery works: router/README.md.
 *
 * In short:
 * - delivery state lives in the events table, never only in memory:
 *   pending → running is the claim (made only when the host's stream is
 *   here), running → done is the ack (recordCompletion, exactly once);
 * - after a connect the router re-sends the host's `running` events (minus
 *   the ids the agent says it holds in Last-Event-ID) with its next poll,
 *   so nothing claimed is lost to a router kill -9, a dropped stream or a
 *   reconnect elsewhere;
 * - every poll re-reads the `event-delivery` cutover row; a host that is
 *   no longer routed here is first removed from the claim set, then told
 *   `event: switch`, so the legacy side never misses a claim made for it.
 */
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { bearerToken, tokenServerId, verifyHypervisorToken } from '../lib/auth/hypervisor-token.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { createMysqlPool } from '../lib/db/mysql-pool.ts';
import { StranglerError, invalidOption } from '../lib/errors.ts';
import { readJsonBody } from '../lib/http/json-body.ts';
import { sendJson } from '../lib/http/respond.ts';
import { createRouter, type RequestContext } from '../lib/http/router.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { EVENT_DELIVERY, routedToRouter, type EventDeliveryState } from '../lib/cutover/event-delivery.ts';
import { createHarpoonClient, HarpoonClientError, type HarpoonClient } from '../harpoon/client.ts';
import type { HarpoonEvent } from '../harpoon/types.ts';
import { parseFeatureRow, type FeatureRowState } from '../lib/cutover/feature-row.ts';
import type { FeatureState, ObservableFeatureStateSource } from '../lib/cutover/types.ts';
import { executedAmong, recordGuardedCompletion } from './completion.ts';
import { createHarpoonFeed, type HarpoonFeed } from './harpoon-feed.ts';
import { loadContextCaches, type ContextCaches } from './harpoon-context.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import {
  ACK_BODY_LIMIT,
  ACKS_PATH,
  EVENTS_PATH,
  HEARTBEAT_FRAME,
  MAX_HELD_IDS,
  MODE_PATH,
  RETRY_MS,
  ROUTER_ERRORS,
  eventFrame,
  parseAckBody,
  parseLastEventId,
  switchFrame,
  type AckItem,
} from './protocol.ts';
import {
  IN_CHUNK,
  chunks,
  claimBatch,
  countPending,
  eventStatus,
  fetchContext,
  fetchFeatureRows,
  fetchPendingIds,
  fetchRegionId,
  fetchRunning,
  fetchServerRegions,
} from './queries.ts';

export interface EventRouterOptions {
  /** The `event_router` MySQL user's settings. */
  db: DbConfig;
  /** The region slug this router serves. */
  region: string;
  /** Secret hypervisor tokens are minted with (lib/auth/hypervisor-token.ts). */
  secret: string;
  pollIntervalMs?: number;
  /** Heartbeat comment interval on every stream (one shared timer). */
  heartbeatMs?: number;
  /** A claim not acked for this long is re-sent to its host's stream if this stream has not carried it. */
  redeliverAfterMs?: number;
  /** Events claimed per poll at most. */
  batchSize?: number;
  /** MySQL connections this router may hold (default 5): acks use all but one, which the poll loop keeps. */
  poolSize?: number;
  /**
   * Harpoon's replicas and the router's service token. With them the router follows `event-writes`:
   * at `full` it takes its region's events from Harpoon's stream and writes claims and `done` through
   * Harpoon, never touching `events`; below full it polls MySQL as before.
   */
  harpoon?: { urls: string[]; token: string };
  /**
   * Where the cutover state comes from (e.g. createHttpFeatureStateSource): the router starts and
   * closes it. Absent: the router reads `cutover_features` over its MySQL pool on every poll.
   */
  stateSource?: RouterStateSource;
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
}

/** A cutover state source the router owns: CutoverStateReader's shape (proxy/cutover/state-store.ts). */
export interface RouterStateSource extends ObservableFeatureStateSource {
  start(): Promise<void>;
  refresh(): Promise<void>;
  close(): Promise<void>;
  readonly lastReadAt: Date | undefined;
}

/** Where the router reads events and writes claims and acks: the switch rule of HARPOON-ERA.md. */
export type EventSourceName = 'mysql' | 'harpoon';

export const EVENT_WRITES = 'event-writes';

export interface EventRouterStats {
  connected: number;
  inflight: number;
  delivered: number;
  acked: number;
  source: EventSourceName;
}

export interface EventRouter {
  start(): Promise<{ port: number; url: string }>;
  /** Stops polling, ends every stream (agents reconnect elsewhere), lets in-flight acks finish. Idempotent. */
  close(): Promise<void>;
  stats(): EventRouterStats;
  readonly registry: Registry;
}

interface Stream {
  serverId: number;
  res: ServerResponse;
  /** Event ids this connection has carried (or the agent said it holds) and that are not acked yet. */
  sent: Set<number>;
}

interface Inflight {
  row: AgentEvent;
  at: number;
}

type AckOutcome = 'acked' | 'duplicate' | 'not_claimed' | 'not_found';

/** A stream whose agent stops reading is cut off past this much unsent data; its events are re-sent on reconnect. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** A FeatureState (from a state source) in the shape the router decides on. */
function rowState(state: FeatureState | undefined): FeatureRowState {
  if (!state) return parseFeatureRow(undefined);
  return parseFeatureRow({ mode: state.mode, percent: state.percent, regions: state.regions === null ? null : JSON.stringify(state.regions), version: state.version });
}

/** Harpoon's status changes per request at most. */
const HARPOON_BATCH = 500;
/** Claim requests a router keeps on the wire to Harpoon at once. */
const CLAIMS_IN_FLIGHT = 4;

function parseUtc(value: string | null): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * @example
 *   const router = createEventRouter({ db: routerDb, region: 'nyc1', secret, port: 0 });
 *   const { url } = await router.start(); … await router.close();
 */
export function createEventRouter(options: EventRouterOptions): EventRouter {
  const region = options.region;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const redeliverAfterMs = options.redeliverAfterMs ?? 15_000;
  const batchSize = options.batchSize ?? 1000;
  const poolSize = options.poolSize ?? 5;
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,32}$/.test(region)) throw invalidOption('region', region, 'a region slug such as "nyc1"');
  if (typeof options.secret !== 'string' || options.secret.length < 8) throw invalidOption('secret', '[redacted]', 'a string of at least 8 characters');
  if (!(pollIntervalMs >= 10)) throw invalidOption('pollIntervalMs', pollIntervalMs, 'at least 10 milliseconds');
  if (!(heartbeatMs >= 100)) throw invalidOption('heartbeatMs', heartbeatMs, 'at least 100 milliseconds');
  if (!(redeliverAfterMs >= 100)) throw invalidOption('redeliverAfterMs', redeliverAfterMs, 'at least 100 milliseconds');
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw invalidOption('batchSize', batchSize, 'an integer from 1 to 10000');
  if (!Number.isInteger(poolSize) || poolSize < 2 || poolSize > 64) throw invalidOption('poolSize', poolSize, 'an integer from 2 to 64');

  const log = (options.logger ?? silentLogger()).child({ component: 'event-router', region });
  const registry = options.registry ?? new Registry();
  if (options.harpoon !== undefined) {
    const h = options.harpoon;
    if (!Array.isArray(h.urls) || h.urls.length === 0 || !h.urls.every((u) => typeof u === 'string' && /^https?:\/\//.test(u))) {
      throw invalidOption('harpoon.urls', h.urls, 'a non-empty list of http(s) URLs of Harpoon replicas');
    }
    if (typeof h.token !== 'string' || h.token.length < 16) throw invalidOption('harpoon.token', '[redacted]', 'a Harpoon service token of at least 16 characters');
  }
  // On Harpoon the router's MySQL work is only the acks' non-event writes, a trickle per region:
  // connections a burst opened close again after a minute idle, down to one.
  const pool = createMysqlPool(options.db, poolSize, { maxIdle: 1 });
  const harpoon: HarpoonClient | undefined = options.harpoon ? createHarpoonClient({ urls: options.harpoon.urls, token: options.harpoon.token }) : undefined;
  const stateSource = options.stateSource;
  /** Until the state source has started (its server may come up after us), the state is read from MySQL. */
  let stateStarted = false;
  let stateRetryAt = 0;

  /** One stream per hypervisor: the Map is the whole per-agent cost (no per-agent timers). */
  const streams = new Map<number, Stream>();
  /** Claimed (by this process, or re-sent by it) and not acked: rows kept so an ack needs no read. */
  const inflight = new Map<number, Inflight>();
  /** Hypervisors whose stream opened since the last poll: their `running` events are re-sent by the next one. */
  const fresh = new Set<number>();
  let serverRegions = new Map<number, string>();
  let serversLoadedAt = 0;
  let serversLoading: Promise<void> | undefined;
  let regionId = 0;
  let state: EventDeliveryState | undefined;
  /** The `event-writes` routing: at full (with Harpoon configured) the router's source is Harpoon. */
  let writes: FeatureRowState = parseFeatureRow(undefined);
  let source: EventSourceName = 'mysql';
  let feed: HarpoonFeed | undefined;
  let caches: ContextCaches | undefined;
  /** Completions whose MySQL half committed and whose `done` has not reached Harpoon yet. */
  const doneQueue = new Set<number>();
  let flushingDones: Promise<void> | undefined;
  /** Acks in progress per event: one at a time per event in this process. */
  const completing = new Map<number, Promise<unknown>>();
  let claimScheduled = false;
  /** Claim requests to Harpoon on the wire, the events they carry, and events to leave alone for a moment. */
  let harpoonClaims = 0;
  const claimingIds = new Set<number>();
  const claimBackoff = new Map<number, number>();
  let claimAgain = false;
  let polling = false;
  /** Set while the source switches: acks wait for it. */
  let switching: Promise<void> | undefined;
  /** Acks being processed on the current source, and who waits for them to drain. */
  let acksOnSource = 0;
  const ackDrained: Array<() => void> = [];
  let looping = false;
  let wakeAgain = false;
  let unsubscribeState: (() => void) | undefined;
  /** When the read that produced `state` started. */
  let stateSince = 0;
  let claiming = false;
  let routingDeferred = false;
  let stateLoading: Promise<void> | undefined;
  let appliedKey: string | undefined;
  let lastSweep = 0;
  let idlePolls = 0;
  let healthy = false;
  let closed = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let currentPoll: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const totals = { delivered: 0, acked: 0 };

  const metric = {
    connected: new Gauge({
      name: 'router_connected_agents',
      help: 'Hypervisor agents holding an event stream to this router.',
      registers: [registry],
      collect() {
        this.set(streams.size);
      },
    }),
    pending: new Gauge({
      name: 'router_pending_events',
      help: "Placed events of this router's region not yet claimed (deliverable backlog), as of the last poll.",
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'router_inflight_events',
      help: 'Events this router claimed or re-sent and has not seen acknowledged.',
      registers: [registry],
      collect() {
        this.set(inflight.size);
      },
    }),
    delivered: new Counter({ name: 'router_events_delivered_total', help: 'Events written to an agent stream for the first time.', registers: [registry] }),
    redelivered: new Counter({
      name: 'router_events_redelivered_total',
      help: 'Claimed, unacknowledged events written again (after a reconnect, a router restart, or a stale claim).',
      registers: [registry],
    }),
    acked: new Counter({ name: 'router_events_acked_total', help: 'Acknowledgements that recorded an execution.', registers: [registry] }),
    duplicateAcks: new Counter({
      name: 'router_ack_duplicates_total',
      help: 'Acknowledgements of events already done (harmless repeats; nothing recorded).',
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'router_delivery_latency_seconds',
      help: "Time from an event's available_at to its first write on its agent's stream.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    queries: new Counter({
      name: 'router_db_queries_total',
      help: 'Statements this router sent to MySQL, by query.',
      labelNames: ['query'],
      registers: [registry],
    }),
    pollSeconds: new Histogram({
      name: 'router_poll_duration_seconds',
      help: 'Time for one poll: state, backlog, pending, claim, context, delivery.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    pollErrors: new Counter({ name: 'router_poll_errors_total', help: 'Polls that failed (retried next interval).', registers: [registry] }),
    switches: new Counter({
      name: 'router_switches_total',
      help: 'Streams ended with `event: switch` because their hypervisor is no longer routed to the router.',
      registers: [registry],
    }),
    source: new Gauge({
      name: 'router_event_source',
      help: 'Where the router reads events and writes claims and acks: 1 for the current source (mysql or harpoon).',
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.set({ source: 'mysql' }, source === 'mysql' ? 1 : 0);
        this.set({ source: 'harpoon' }, source === 'harpoon' ? 1 : 0);
      },
    }),
    sourceSwitches: new Counter({ name: 'router_source_switches_total', help: 'Switches of the event source, by the source switched to.', labelNames: ['to'], registers: [registry] }),
    harpoonLag: new Histogram({
      name: 'router_harpoon_stream_lag_seconds',
      help: "Time from a change's commit in Harpoon to its arrival on this router's stream.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    harpoonReconnects: new Counter({ name: 'router_harpoon_stream_reconnects_total', help: "Times this router's Harpoon stream dropped and resumed from its cursor.", registers: [registry] }),
    harpoonConnected: new Gauge({
      name: 'router_harpoon_stream_connected',
      help: '1 while the Harpoon stream is open (Harpoon source only).',
      registers: [registry],
      collect() {
        this.set(feed?.connected() ? 1 : 0);
      },
    }),
    harpoonCursor: new Gauge({
      name: 'router_harpoon_stream_cursor',
      help: 'The last Harpoon stream cursor this router received.',
      registers: [registry],
      collect() {
        this.set(feed?.cursor() ?? 0);
      },
    }),
    harpoonRequests: new Counter({
      name: 'router_harpoon_requests_total',
      help: 'Requests this router sent to Harpoon, by purpose (catchup, claim, done, event).',
      labelNames: ['op'],
      registers: [registry],
    }),
    harpoonClaim: new Histogram({
      name: 'router_harpoon_claim_seconds',
      help: 'One claim request through Harpoon (pending → running for up to 500 events), sent to answered.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    harpoonErrors: new Counter({ name: 'router_harpoon_errors_total', help: 'Harpoon requests that failed (retried).', labelNames: ['op'], registers: [registry] }),
  };
  const hq = (op: string, n = 1) => metric.harpoonRequests.inc({ op }, n);
  const q = (query: string, n = 1) => metric.queries.inc({ query }, n);

  /**
   * Acks take at most poolSize - 1 connections, so a flood of acks never
   * queues the poll (and with it every delivery) behind them.
   */
  let ackSlots = poolSize - 1;
  const ackWaiters: Array<() => void> = [];
  async function withAckSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (ackSlots > 0) ackSlots--;
    else await new Promise<void>((r) => ackWaiters.push(r));
    try {
      return await fn();
    } finally {
      const next = ackWaiters.shift();
      if (next) next();
      else ackSlots++;
    }
  }

  // ---- state: servers, cutover ------------------------------------------------------------

  function loadServers(): Promise<void> {
    serversLoading ??= (async () => {
      try {
        q('servers');
        serverRegions = await fetchServerRegions(pool);
        serversLoadedAt = Date.now();
      } finally {
        serversLoading = undefined;
      }
    })();
    return serversLoading;
  }

  /** A hypervisor's region; an unknown id reloads the map at most every 5 s (tokens name ids, so misses are bounded). */
  async function regionOf(serverId: number): Promise<string | undefined> {
    const known = serverRegions.get(serverId);
    if (known !== undefined || Date.now() - serversLoadedAt < 5000) return known;
    await loadServers();
    return serverRegions.get(serverId);
  }

  /** With a state source: its current states (refreshed over HTTP when `fetch`); else one MySQL statement. */
  async function readStates(fetchNow: boolean): Promise<{ delivery: FeatureRowState; writes: FeatureRowState }> {
    if (stateSource && !stateStarted && Date.now() >= stateRetryAt) await startStateSource();
    if (stateSource && stateStarted) {
      if (fetchNow) await stateSource.refresh();
      return { delivery: rowState(stateSource.get(EVENT_DELIVERY)), writes: rowState(stateSource.get(EVENT_WRITES)) };
    }
    q('state');
    const rows = await fetchFeatureRows(pool, [EVENT_DELIVERY, EVENT_WRITES]);
    return { delivery: parseFeatureRow(rows.get(EVENT_DELIVERY)), writes: parseFeatureRow(rows.get(EVENT_WRITES)) };
  }

  function refreshState(fetchNow = true): Promise<void> {
    stateLoading ??= (async () => {
      try {
        const started = Date.now();
        const read = await readStates(fetchNow);
        state = read.delivery;
        writes = read.writes;
        // A state source's memory is as fresh as its last read, not as this call.
        stateSince = stateStarted && !fetchNow ? (stateSource?.lastReadAt?.getTime() ?? 0) : started;
        applyRouting();
      } finally {
        stateLoading = undefined;
      }
    })();
    return stateLoading;
  }

  /** A failed start is retried every 2 s from the poll; meanwhile the state comes from MySQL (same rows). */
  async function startStateSource(): Promise<void> {
    try {
      await stateSource!.start();
      stateStarted = true;
      log.info('reading the cutover state from its state source');
    } catch (err) {
      if (stateRetryAt === 0) log.warn({ err: (err as Error).message }, 'the cutover state source is not reachable yet; reading the state from MySQL meanwhile');
      stateRetryAt = Date.now() + 2000;
    }
  }

  function routed(serverId: number): boolean {
    return state !== undefined && routedToRouter(state, serverId, region);
  }

  /**
   * Invariant: every stream in `streams` is routed here under `state`. A
   * change re-checks them all, once. Never while a claim is in flight: the
   * claimed events are written first, then the switch, so every claim made
   * for a host reaches it before it leaves.
   */
  function applyRouting(): void {
    if (!state || state.key === appliedKey) return;
    if (claiming || harpoonClaims > 0) {
      routingDeferred = true;
      return;
    }
    appliedKey = state.key;
    let switched = 0;
    for (const stream of [...streams.values()]) {
      if (!routed(stream.serverId)) {
        switchAway(stream);
        switched++;
      }
    }
    if (switched > 0) log.info({ switched, version: state.version }, 'hypervisors no longer routed here: switched to the god query');
  }

  function switchAway(stream: Stream): void {
    // Out of the claim set first: nothing is claimed for this host after its switch is sent.
    if (streams.get(stream.serverId) === stream) streams.delete(stream.serverId);
    metric.switches.inc();
    if (!stream.res.writableEnded && !stream.res.destroyed) stream.res.end(switchFrame(state?.version ?? 0));
  }

  // ---- delivery ------------------------------------------------------------------------------

  function write(stream: Stream, frame: string): boolean {
    const res = stream.res;
    if (res.writableEnded || res.destroyed) return false;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      log.warn({ server_id: stream.serverId }, 'agent is not reading its stream; cutting it off');
      drop(stream);
      res.destroy();
      return false;
    }
    res.write(frame);
    return true;
  }

  /** Writes a claimed event to its host's current stream, unless that connection already carried it. */
  function deliver(row: AgentEvent, first: boolean): void {
    const entry = inflight.get(row.event_id);
    if (entry) entry.row = row;
    else inflight.set(row.event_id, { row, at: Date.now() });
    const stream = streams.get(row.server_id);
    if (!stream || stream.sent.has(row.event_id)) return;
    if (!write(stream, eventFrame(row))) return;
    stream.sent.add(row.event_id);
    totals.delivered++;
    if (first) {
      metric.delivered.inc();
      const available = parseUtc(row.event_available_at ?? row.event_created_at);
      if (available !== undefined) metric.latency.observe(Math.max(0, (Date.now() - available) / 1000));
    } else {
      metric.redelivered.inc();
    }
  }

  function drop(stream: Stream): void {
    if (streams.get(stream.serverId) === stream) streams.delete(stream.serverId);
  }

  /** Resolves true when the batch was full: more work is likely waiting, so the next poll comes at once. */
  async function poll(): Promise<boolean> {
    const end = metric.pollSeconds.startTimer();
    try {
      // A state source is read from memory (it refreshes itself and wakes the loop on a change).
      await refreshState(false);
      await followSource();
      if (source === 'harpoon') {
        harpoonTick();
        return false;
      }
      if (doneQueue.size > 0) void flushDones();
      if (fresh.size > 0) {
        const opened = [...fresh].filter((id) => streams.has(id));
        fresh.clear();
        try {
          for (const part of chunks(opened, IN_CHUNK)) {
            q('running');
            for (const row of await fetchRunning(pool, part)) deliver(row, false);
          }
        } catch (err) {
          for (const id of opened) fresh.add(id);
          throw err;
        }
      }
      q('backlog');
      const backlog = await countPending(pool, regionId);
      metric.pending.set(backlog);
      const hosts = [...streams.keys()];
      if (hosts.length === 0) return false;
      let full = false;
      // Idle region: two statements per poll. The per-host read still runs every tenth idle poll, in case a
      // row's region_id ever disagreed with its host's region (the count is by event region, delivery by host).
      if (backlog > 0 || ++idlePolls % 10 === 0) {
        idlePolls = 0;
        full = await claimAndDeliver(hosts);
      }
      if (Date.now() - lastSweep >= Math.max(pollIntervalMs, redeliverAfterMs / 2)) {
        lastSweep = Date.now();
        await sweep();
      }
      return full;
    } finally {
      end();
    }
  }

  /** One batch: pending ids of the connected hosts, claim, context, write. True when the batch was full. */
  async function claimAndDeliver(hosts: number[]): Promise<boolean> {
    let pending: Array<{ id: number; server_id: number }> = [];
    for (const part of chunks(hosts, IN_CHUNK)) {
      if (pending.length >= batchSize) break;
      q('pending');
      pending = pending.concat(await fetchPendingIds(pool, part, batchSize - pending.length));
    }
    // A host may have switched away while we read: claim only for streams still here.
    const wanted = pending.filter((p) => streams.has(p.server_id)).map((p) => p.id);
    if (wanted.length > 0) {
      claiming = true;
      try {
        q('claim', 2);
        const claimed = await claimBatch(pool, wanted);
        if (claimed.length > 0) {
          q('context');
          for (const row of await fetchContext(pool, claimed)) deliver(row, true);
        }
      } finally {
        claiming = false;
        if (routingDeferred) {
          routingDeferred = false;
          applyRouting();
        }
      }
    }
    return pending.length >= batchSize;
  }

  /**
   * Claims this host has had for a while without an ack, that its current
   * connection never carried: a claim whose write raced a reconnect to
   * another router, or one left by a killed router while the agent stayed
   * connected elsewhere. Also forgets old rows of hosts no longer here.
   */
  async function sweep(): Promise<void> {
    const hosts = [...streams.keys()];
    for (const part of chunks(hosts, IN_CHUNK)) {
      q('redeliver');
      for (const row of await fetchRunning(pool, part, redeliverAfterMs)) deliver(row, false);
    }
    const cutoff = Date.now() - Math.max(10 * redeliverAfterMs, 5 * 60_000);
    for (const [id, entry] of inflight) if (entry.at < cutoff && !streams.has(entry.row.server_id)) inflight.delete(id);
  }


  // ---- Harpoon source ------------------------------------------------------------------------

  function wantedSource(): EventSourceName {
    return writes.routing.mode === 'full' && harpoon !== undefined ? 'harpoon' : 'mysql';
  }

  /**
   * Switches between two polls. To Harpoon: catch-up read, then the stream
   * from its cursor; claims already running that have an execution recorded
   * (a completion whose `done` never reached Harpoon: a crash between the two
   * writes) get their `done` instead of a redelivery. Back to MySQL: the
   * stream closes and the next poll re-sends every connected host's
   * `running` events from MySQL (minus what each stream already carried).
   */
  async function followSource(): Promise<void> {
    const want = wantedSource();
    if (want === source) return;
    if (writes.routing.mode === 'full' && !harpoon) log.warn('event-writes is full but no Harpoon is configured: staying on MySQL');
    let release!: () => void;
    switching = new Promise<void>((r) => (release = r));
    try {
      // Acks already running finish on the old source first (a direct MySQL `done` after the switch would be a
      // write Harpoon's stream never carries); acks arriving meanwhile wait for the switch, then use the new one.
      while (acksOnSource > 0) await new Promise<void>((r) => ackDrained.push(r));
      await switchSource(want);
    } finally {
      switching = undefined;
      release();
    }
  }

  async function switchSource(want: EventSourceName): Promise<void> {
    if (want === 'harpoon') {
      const next = createHarpoonFeed({
        client: harpoon!,
        region,
        onEvent: onFeedEvent,
        onChange(change) {
          const at = Date.parse(change.committed_at);
          if (Number.isFinite(at)) metric.harpoonLag.observe(Math.max(0, (Date.now() - at) / 1000));
        },
        onDisconnect: () => metric.harpoonReconnects.inc(),
      });
      hq('catchup');
      let running: HarpoonEvent[];
      try {
        running = await next.start();
      } catch (err) {
        next.close();
        metric.harpoonErrors.inc({ op: 'catchup' });
        throw err;
      }
      try {
        const unknown = running.filter((e) => !inflight.has(e.id)).map((e) => e.id);
        for (const part of chunks(unknown)) {
          q('executed');
          for (const id of await executedAmong(pool, part)) {
            next.forget(id);
            doneQueue.add(id);
          }
        }
      } catch (err) {
        next.close();
        throw err;
      }
      feed = next;
      source = 'harpoon';
      fresh.clear();
      metric.sourceSwitches.inc({ to: 'harpoon' });
      log.info({ running: running.length, pending: next.pendingCount(), cursor: next.cursor() }, 'event-writes is full: events now come from Harpoon');
      void flushDones();
      for (const stream of streams.values()) resendRunning(stream.serverId);
      kickClaims();
      return;
    }
    // Dones still owed to Harpoon go first (best effort; the MySQL poll keeps flushing what is left).
    await flushDones().catch(() => {});
    feed?.close();
    feed = undefined;
    source = 'mysql';
    metric.sourceSwitches.inc({ to: 'mysql' });
    for (const id of streams.keys()) fresh.add(id);
    log.info('event-writes is below full: back to polling MySQL');
  }

  function onFeedEvent(event: HarpoonEvent): void {
    caches?.learn(event);
    if (event.status === 'done' || event.status === 'error') {
      inflight.delete(event.id);
      if (event.server_id !== null) streams.get(event.server_id)?.sent.delete(event.id);
      doneQueue.delete(event.id);
      claimBackoff.delete(event.id);
    } else if (event.status === 'pending' && event.server_id !== null && streams.has(event.server_id)) {
      kickClaims();
    }
  }

  function harpoonRow(event: HarpoonEvent): AgentEvent {
    return caches!.row(event);
  }

  /** A host's claimed, unacknowledged events, to its current stream (those it has not carried). */
  function resendRunning(serverId: number): void {
    if (!feed) return;
    for (const e of feed.runningOf(serverId)) deliver(inflight.get(e.id)?.row ?? harpoonRow(e), false);
  }

  /** Memory only: the redelivery sweep, claims left to retry, dones left to retry. No statement, no request when idle. */
  function harpoonTick(): void {
    if (!feed) return;
    metric.pending.set(feed.pendingCount());
    if (doneQueue.size > 0) void flushDones();
    if (feed.pendingCount() > 0) kickClaims();
    if (Date.now() - lastSweep >= Math.max(pollIntervalMs, redeliverAfterMs / 2)) {
      lastSweep = Date.now();
      const cutoff = Date.now() - redeliverAfterMs;
      for (const [id, entry] of inflight) {
        if (entry.at < cutoff && streams.has(entry.row.server_id)) deliver(entry.row, false);
        else if (entry.at < Date.now() - Math.max(10 * redeliverAfterMs, 5 * 60_000) && !streams.has(entry.row.server_id)) inflight.delete(id);
      }
    }
  }

  function kickClaims(): void {
    if (claimScheduled || closed) return;
    claimScheduled = true;
    setImmediate(() => {
      claimScheduled = false;
      void claimHarpoon();
    });
  }

  /**
   * pending → running through Harpoon for the hosts whose stream is here,
   * up to 500 per request and up to CLAIMS_IN_FLIGHT requests at once (an
   * event arriving while a claim is on the wire does not wait for it). An
   * answer of `running` (changed or not: a claim made earlier, by us or a
   * dead process) is delivered; an illegal transition means the event is
   * already finished; any other refusal is retried after a second.
   */
  async function claimHarpoon(): Promise<void> {
    const current = feed;
    if (!current || source !== 'harpoon' || closed) return;
    if (harpoonClaims >= CLAIMS_IN_FLIGHT) {
      claimAgain = true;
      return;
    }
    const limit = Math.min(batchSize, HARPOON_BATCH);
    const now = Date.now();
    const ids: number[] = [];
    for (const host of current.pendingHosts()) {
      if (!streams.has(host)) continue;
      for (const e of current.pendingOf(host)) {
        if (claimingIds.has(e.id) || (claimBackoff.get(e.id) ?? 0) > now) continue;
        ids.push(e.id);
        if (ids.length >= limit) break;
      }
      if (ids.length >= limit) break;
    }
    if (ids.length === 0) return;
    harpoonClaims++;
    for (const id of ids) claimingIds.add(id);
    let again = ids.length >= limit;
    try {
      hq('claim');
      const timer = metric.harpoonClaim.startTimer();
      let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
      try {
        results = await harpoon!.setStatuses(ids.map((id) => ({ id, status: 'running' as const })));
        timer();
      } catch (err) {
        metric.harpoonErrors.inc({ op: 'claim' });
        log.warn({ err: (err as Error).message, events: ids.length }, 'claim through Harpoon failed; retrying next tick');
        again = false;
        return;
      }
      for (const r of results) {
        if ('event' in r) {
          claimBackoff.delete(r.id);
          current.apply(r.event);
          if (r.event.status === 'running' && r.event.server_id !== null) deliver(harpoonRow(r.event), r.changed);
        } else if (r.error.code === 'HARPOON_ERR_ILLEGAL_TRANSITION') {
          claimBackoff.delete(r.id);
          current.forget(r.id);
        } else {
          claimBackoff.set(r.id, Date.now() + 1000);
          log.warn({ event_id: r.id, code: r.error.code }, 'Harpoon refused a claim; retrying in a second');
        }
      }
    } finally {
      for (const id of ids) claimingIds.delete(id);
      harpoonClaims--;
      if (harpoonClaims === 0 && routingDeferred) {
        routingDeferred = false;
        applyRouting();
      }
      if (again || claimAgain) {
        claimAgain = false;
        kickClaims();
      }
    }
  }

  /** `done` through Harpoon for completions recorded in MySQL; idempotent, retried until it gets through. */
  function flushDones(): Promise<void> {
    if (flushingDones) return flushingDones;
    if (doneQueue.size === 0 || !harpoon) return Promise.resolve();
    flushingDones = (async () => {
      try {
        while (doneQueue.size > 0 && harpoon) {
          const ids = [...doneQueue].slice(0, HARPOON_BATCH);
          hq('done');
          let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
          try {
            results = await harpoon.setStatuses(ids.map((id) => ({ id, status: 'done' as const })));
          } catch (err) {
            metric.harpoonErrors.inc({ op: 'done' });
            log.warn({ err: (err as Error).message, events: ids.length }, "an event's done did not reach Harpoon; retrying next tick");
            return;
          }
          for (const r of results) {
            // done, or an illegal transition (already finished): nothing left to do either way.
            doneQueue.delete(r.id);
            if ('event' in r) feed?.apply(r.event);
          }
        }
      } finally {
        flushingDones = undefined;
      }
    })();
    return flushingDones;
  }

  function wake(): void {
    // Before start() runs the first poll there is nothing to wake (a source's first load emits changes too).
    if (closed || !looping) return;
    if (polling) {
      wakeAgain = true;
      return;
    }
    clearTimeout(pollTimer);
    loop();
  }

  function loop(): void {
    // One loop only: a second would switch sources concurrently with the first.
    if (closed || polling) return;
    let full = false;
    polling = true;
    currentPoll = poll()
      .then(
        (more) => {
          healthy = true;
          full = more;
        },
        (err: Error) => {
          healthy = false;
          metric.pollErrors.inc();
          log.warn({ err: err.message }, 'poll failed; retrying next interval');
        },
      )
      .finally(() => {
        polling = false;
        const now = full || wakeAgain;
        wakeAgain = false;
        if (!closed) pollTimer = setTimeout(loop, now ? 0 : pollIntervalMs);
      });
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  function fail(status: number, code: string, message: string): StranglerError {
    return new StranglerError(code, message, { status });
  }

  /** 401 (token), then 403 (someone else's hypervisor), then 404 (not this region). */
  async function authorize(ctx: RequestContext): Promise<number> {
    const token = bearerToken(ctx.req.headers.authorization);
    if (!token) throw fail(401, ROUTER_ERRORS.UNAUTHORIZED, 'send the hypervisor token as "Authorization: Bearer hv.<id>.<mac>"');
    const tokenId = tokenServerId(token);
    const tokenRegion = tokenId === undefined ? undefined : await regionOf(tokenId);
    if (tokenId === undefined || tokenRegion === undefined || !verifyHypervisorToken(options.secret, token, tokenId, tokenRegion)) {
      throw fail(401, ROUTER_ERRORS.UNAUTHORIZED, 'the hypervisor token is not valid');
    }
    const raw = ctx.params.id ?? '';
    if (!/^[1-9][0-9]{0,9}$/.test(raw) || Number(raw) !== tokenId) {
      throw fail(403, ROUTER_ERRORS.FORBIDDEN, `this token belongs to hypervisor ${tokenId}; it can read and acknowledge only its own events`);
    }
    if (ctx.params.region !== region || tokenRegion !== region) {
      throw fail(404, ROUTER_ERRORS.WRONG_REGION, `hypervisor ${tokenId} is in region ${tokenRegion}; this router serves ${region}`);
    }
    return tokenId;
  }

  function refuseWhileClosing(): void {
    if (closed) throw fail(503, ROUTER_ERRORS.SHUTTING_DOWN, 'this router is shutting down; reconnect');
  }

  async function openStream(ctx: RequestContext): Promise<void> {
    const arrived = Date.now();
    const serverId = await authorize(ctx);
    refuseWhileClosing();
    // The agent read the state before connecting, so a state read before it arrived may be older than the
    // agent's: re-read (one primary-key lookup, shared by concurrent connects) rather than bounce it.
    while (!state || (!routed(serverId) && stateSince < arrived)) await refreshState();
    const { req, res } = ctx;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.on('error', () => {});
    req.socket.setNoDelay(true);
    res.write(`retry: ${RETRY_MS}\n: event router ${region}, hypervisor ${serverId}\n\n`);
    if (!routed(serverId)) {
      metric.switches.inc();
      res.end(switchFrame(state?.version ?? 0));
      return;
    }
    const previous = streams.get(serverId);
    if (previous) {
      drop(previous);
      previous.res.end();
    }
    const stream: Stream = { serverId, res, sent: new Set(parseLastEventId(req.headers['last-event-id']).slice(0, MAX_HELD_IDS)) };
    streams.set(serverId, stream);
    res.on('close', () => drop(stream));
    log.debug({ server_id: serverId, holding: stream.sent.size }, 'agent connected');
    if (source === 'harpoon') {
      // From memory: Harpoon's stream keeps the region's claims and placed events here.
      resendRunning(serverId);
      kickClaims();
      return;
    }
    // What this host has claimed and not acked (after our restart, or a reconnect from another router) is
    // re-sent by the next poll, in one statement for every stream opened since: a reconnect storm of
    // 15,000 agents costs 15 statements, not 15,000.
    fresh.add(serverId);
  }

  /** One ack at a time per event in this process; across processes the completion's row locks decide. */
  async function complete(row: AgentEvent, item: AckItem, via: EventSourceName): Promise<AckOutcome> {
    const previous = completing.get(row.event_id);
    const run = (async () => {
      if (previous) await previous.catch(() => {});
      if (row.event_status === 'done') return 'duplicate' as const;
      if (via === 'harpoon' && row.event_status !== 'running') return 'not_claimed' as const;
      return withAckSlot(() => completeOnConnection(row, item, via));
    })();
    completing.set(row.event_id, run);
    try {
      const outcome = await run;
      // The MySQL half is committed; the event's done goes to Harpoon now (and is retried until it does).
      if (via === 'harpoon' && (outcome === 'acked' || outcome === 'duplicate')) {
        doneQueue.add(row.event_id);
        await flushDones();
      }
      return outcome;
    } finally {
      if (completing.get(row.event_id) === run) completing.delete(row.event_id);
    }
  }

  async function completeOnConnection(row: AgentEvent, item: AckItem, via: EventSourceName): Promise<AckOutcome> {
    const conn = await pool.getConnection();
    try {
      q('ack');
      const outcome = await recordGuardedCompletion(conn, row, item.receivedAt, via);
      if (outcome === 'recorded') return 'acked';
      if (outcome === 'already-recorded') return 'duplicate';
      q('event_status');
      const status = await eventStatus(conn, row.event_id);
      return status === 'done' ? 'duplicate' : status === undefined ? 'not_found' : 'not_claimed';
    } finally {
      conn.release();
    }
  }

  /** Rows for acked events this process does not hold: from Harpoon (its source) or MySQL. */
  async function readAckRows(ids: number[], via: EventSourceName): Promise<AgentEvent[]> {
    if (via === 'mysql') {
      q('event');
      return withAckSlot(() => fetchContext(pool, ids));
    }
    const rows: AgentEvent[] = [];
    for (const id of ids) {
      hq('event');
      try {
        const event = await harpoon!.getEvent(id);
        if (event.server_id !== null) rows.push(harpoonRow(event));
      } catch (err) {
        if (err instanceof HarpoonClientError && err.status === 404) continue;
        metric.harpoonErrors.inc({ op: 'event' });
        throw err;
      }
    }
    return rows;
  }

  async function acknowledge(ctx: RequestContext): Promise<void> {
    const serverId = await authorize(ctx);
    refuseWhileClosing();
    const { items, batch } = parseAckBody(await readJsonBody(ctx.req, { limit: ACK_BODY_LIMIT }));
    // The source when the ack arrived (after a switch in progress): its completion goes where events are owned now.
    while (switching) await switching;
    const via = source;
    acksOnSource++;
    try {
      await acknowledgeOn(ctx, serverId, items, batch, via);
    } finally {
      if (--acksOnSource === 0) for (const r of ackDrained.splice(0)) r();
    }
  }

  async function acknowledgeOn(ctx: RequestContext, serverId: number, items: AckItem[], batch: boolean, via: EventSourceName): Promise<void> {
    // Rows: from memory when this router delivered them, else one read for the rest.
    const rows = new Map<number, AgentEvent>();
    const missing: number[] = [];
    for (const item of items) {
      const known = inflight.get(item.eventId)?.row;
      if (known) rows.set(item.eventId, { ...known, event_status: 'running' });
      else missing.push(item.eventId);
    }
    if (missing.length > 0) {
      for (const row of await readAckRows([...new Set(missing)], via)) rows.set(row.event_id, row);
    }
    // Ownership of every item before anything is written.
    for (const item of items) {
      const row = rows.get(item.eventId);
      if (row && row.server_id !== serverId) {
        throw fail(403, ROUTER_ERRORS.FORBIDDEN, `event ${item.eventId} belongs to another hypervisor; nothing was recorded`);
      }
    }
    const results: Array<{ event_id: number; outcome: AckOutcome }> = [];
    for (const item of items) {
      const row = rows.get(item.eventId);
      const outcome = row ? await complete(row, item, via) : 'not_found';
      if (outcome === 'acked' || outcome === 'duplicate') {
        inflight.delete(item.eventId);
        streams.get(serverId)?.sent.delete(item.eventId);
        if (row) row.event_status = 'done';
      }
      if (outcome === 'acked') {
        metric.acked.inc();
        totals.acked++;
      } else if (outcome === 'duplicate') {
        metric.duplicateAcks.inc();
      }
      results.push({ event_id: item.eventId, outcome });
    }
    const headers: Record<string, string> = closed ? { connection: 'close' } : {};
    if (batch) {
      sendJson(
        ctx.res,
        200,
        {
          results: results.map((r) =>
            r.outcome === 'acked' || r.outcome === 'duplicate'
              ? { event_id: r.event_id, duplicate: r.outcome === 'duplicate' }
              : { event_id: r.event_id, error: r.outcome === 'not_found' ? ROUTER_ERRORS.EVENT_NOT_FOUND : ROUTER_ERRORS.NOT_CLAIMED },
          ),
        },
        headers,
      );
      return;
    }
    const { event_id, outcome } = results[0]!;
    if (outcome === 'not_found') throw fail(404, ROUTER_ERRORS.EVENT_NOT_FOUND, `event ${event_id} does not exist`);
    if (outcome === 'not_claimed') {
      throw fail(409, ROUTER_ERRORS.NOT_CLAIMED, `event ${event_id} was never delivered (it is not running); nothing was recorded`);
    }
    sendJson(ctx.res, 200, { event_id, duplicate: outcome === 'duplicate' }, headers);
  }

  async function mode(ctx: RequestContext): Promise<void> {
    const serverId = await authorize(ctx);
    if (!state || Date.now() - stateSince > pollIntervalMs) await refreshState();
    sendJson(ctx.res, 200, {
      server_id: serverId,
      region,
      source: routed(serverId) ? 'router' : 'god-query',
      routing: state?.routing,
      version: state?.version ?? 0,
    });
  }

  const routes = createRouter().add('GET', EVENTS_PATH, openStream).add('POST', ACKS_PATH, acknowledge).add('GET', MODE_PATH, mode);
  const http = createHttpService({
    name: 'event-router',
    router: routes,
    registry,
    logger: log,
    port: options.port,
    host: options.host,
    ready: () => healthy && !closed,
  });

  return {
    registry,
    stats: () => ({ connected: streams.size, inflight: inflight.size, ...totals, source }),
    async start() {
      try {
        q('region');
        const id = await fetchRegionId(pool, region);
        if (id === undefined) throw new StranglerError(ROUTER_ERRORS.UNKNOWN_REGION, `region "${region}" does not exist in the regions table`);
        regionId = id;
        await loadServers();
        if (harpoon) {
          q('caches', 4);
          caches = await loadContextCaches(pool, regionId);
        }
        if (stateSource) {
          unsubscribeState = stateSource.onChange((change) => {
            if (change.feature === EVENT_DELIVERY || change.feature === EVENT_WRITES) wake();
          });
          await startStateSource();
        }
        await refreshState(false);
      } catch (err) {
        unsubscribeState?.();
        await stateSource?.close().catch(() => {});
        await pool.end().catch(() => {});
        closed = true;
        throw err;
      }
      const address = await http.start();
      heartbeat = setInterval(() => {
        for (const stream of streams.values()) write(stream, HEARTBEAT_FRAME);
      }, heartbeatMs);
      looping = true;
      loop();
      log.info({ url: address.url, hypervisors: [...serverRegions.values()].filter((r) => r === region).length }, 'event router started');
      return address;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(pollTimer);
        clearInterval(heartbeat);
        await currentPoll;
        unsubscribeState?.();
        feed?.close();
        await Promise.allSettled([...completing.values()]);
        if (doneQueue.size > 0) await flushDones().catch(() => {});
        // No switch event: the agents stay on the router path and reconnect (to a sibling, or to us restarted).
        for (const stream of [...streams.values()]) {
          drop(stream);
          stream.res.end();
        }
        const done = http.close();
        const force = setTimeout(() => http.server.closeAllConnections(), 5000);
        await done;
        clearTimeout(force);
        await stateSource?.close().catch(() => {});
        await pool.end().catch(() => {});
      })();
      return closing;
    },
  };
}
