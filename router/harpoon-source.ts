/**
 * The router's Harpoon source (`event-writes` at full): the region's events
 * come from Harpoon's stream (harpoon-feed.ts), claims and `done` go through
 * Harpoon, and the router sends no statement on `events`. The switch rule,
 * the crash-safe completion and the latency figures: router/README.md.
 */
import { createHarpoonClient, HarpoonClientError, type HarpoonClient } from '../harpoon/client.ts';
import type { HarpoonEvent } from '../harpoon/types.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import { HOST_ROW_GUARD, executedAmong, recordGuardedCompletion } from './completion.ts';
import type { AckOutcome, EventSource, SourceContext } from './event-source.ts';
import { loadContextCaches, type ContextCaches } from './harpoon-context.ts';
import { createHarpoonFeed, type HarpoonFeed } from './harpoon-feed.ts';
import { chunks } from './queries.ts';

/** Harpoon's status changes per request at most. */
const HARPOON_BATCH = 500;
/** Claim requests a router keeps on the wire to Harpoon at once. */
const CLAIMS_IN_FLIGHT = 4;

export interface HarpoonSource extends EventSource {
  /** Whether the stream from Harpoon is open, and its cursor (for the metrics). */
  connected(): boolean;
  cursor(): number | undefined;
}

/**
 * @example
 *   const source = createHarpoonSource(context, { urls, token });
 *   await source.activate();   // catch-up, then the stream
 */
export function createHarpoonSource(ctx: SourceContext, settings: { urls: string[]; token: string }): HarpoonSource {
  const { pool, hub, metric, log } = ctx;
  const region = ctx.settings.region;
  const client: HarpoonClient = createHarpoonClient({ urls: settings.urls, token: settings.token });
  const hq = (op: string, n = 1) => metric.harpoonRequests.inc({ op }, n);
  let feed: HarpoonFeed | undefined;
  let caches: ContextCaches | undefined;
  /** Completions whose MySQL half committed and whose `done` has not reached Harpoon yet. */
  const doneQueue = new Set<number>();
  let flushingDones: Promise<void> | undefined;
  let claimScheduled = false;
  /** Claim requests on the wire, the events they carry, and events to leave alone for a moment. */
  let claimsOnWire = 0;
  const claimingIds = new Set<number>();
  const claimBackoff = new Map<number, number>();
  let claimAgain = false;
  let lastSweep = 0;

  function rowOf(event: HarpoonEvent): AgentEvent {
    return caches!.row(event);
  }

  /** `done` through Harpoon for completions recorded in MySQL; idempotent, retried until it gets through. */
  function flushDones(): Promise<void> {
    if (flushingDones) return flushingDones;
    if (doneQueue.size === 0) return Promise.resolve();
    flushingDones = (async () => {
      try {
        while (doneQueue.size > 0) {
          const ids = [...doneQueue].slice(0, HARPOON_BATCH);
          hq('done');
          let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
          try {
            results = await client.setStatuses(ids.map((id) => ({ id, status: 'done' as const })));
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

  function onFeedEvent(event: HarpoonEvent): void {
    caches?.learn(event);
    if (event.status === 'done' || event.status === 'error') {
      hub.settled(event.id, event.server_id);
      doneQueue.delete(event.id);
      claimBackoff.delete(event.id);
    } else if (event.status === 'pending' && event.server_id !== null && hub.streams.has(event.server_id)) {
      kickClaims();
    }
  }

  /** A host's claimed, unacknowledged events, to its current stream (those it has not carried). */
  function resendRunning(serverId: number): void {
    if (!feed) return;
    for (const e of feed.runningOf(serverId)) hub.deliver(hub.inflight.get(e.id)?.row ?? rowOf(e), false);
  }

  function kickClaims(): void {
    if (claimScheduled || ctx.closed()) return;
    claimScheduled = true;
    setImmediate(() => {
      claimScheduled = false;
      void claim();
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
  async function claim(): Promise<void> {
    const current = feed;
    if (!current || ctx.closed()) return;
    if (claimsOnWire >= CLAIMS_IN_FLIGHT) {
      claimAgain = true;
      return;
    }
    const limit = Math.min(ctx.settings.batchSize, HARPOON_BATCH);
    const now = Date.now();
    const ids: number[] = [];
    for (const host of current.pendingHosts()) {
      if (!hub.streams.has(host)) continue;
      for (const e of current.pendingOf(host)) {
        if (claimingIds.has(e.id) || (claimBackoff.get(e.id) ?? 0) > now) continue;
        ids.push(e.id);
        if (ids.length >= limit) break;
      }
      if (ids.length >= limit) break;
    }
    if (ids.length === 0) return;
    claimsOnWire++;
    for (const id of ids) claimingIds.add(id);
    let again = ids.length >= limit;
    try {
      hq('claim');
      const timer = metric.harpoonClaim.startTimer();
      let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
      try {
        results = await client.setStatuses(ids.map((id) => ({ id, status: 'running' as const })));
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
          if (r.event.status === 'running' && r.event.server_id !== null) hub.deliver(rowOf(r.event), r.changed);
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
      claimsOnWire--;
      if (claimsOnWire === 0) ctx.claimsSettled();
      if (again || claimAgain) {
        claimAgain = false;
        kickClaims();
      }
    }
  }

  return {
    name: 'harpoon',
    connected: () => feed?.connected() ?? false,
    cursor: () => feed?.cursor(),
    /**
     * Catch-up read, then the stream from its cursor; claims already running
     * that have an execution recorded (a completion whose `done` never reached
     * Harpoon: a crash between the two writes) get their `done` instead of a
     * redelivery.
     */
    async activate() {
      if (!caches) {
        ctx.countQuery('caches', 4);
        caches = await loadContextCaches(pool, ctx.regionId);
      }
      const next = createHarpoonFeed({
        client,
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
        const unknown = running.filter((e) => !hub.inflight.has(e.id)).map((e) => e.id);
        for (const part of chunks(unknown)) {
          ctx.countQuery('executed');
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
      log.info({ running: running.length, pending: next.pendingCount(), cursor: next.cursor() }, 'event-writes is full: events now come from Harpoon');
      void flushDones();
      for (const serverId of hub.streams.keys()) resendRunning(serverId);
      kickClaims();
    },
    async deactivate() {
      // Dones still owed to Harpoon go first (best effort; idle() keeps flushing what is left).
      await flushDones().catch(() => {});
      feed?.close();
      feed = undefined;
    },
    /** Memory only: the redelivery sweep, claims left to retry, dones left to retry. No statement, no request when idle. */
    async tick() {
      if (!feed) return false;
      metric.pending.set(feed.pendingCount());
      if (doneQueue.size > 0) void flushDones();
      if (feed.pendingCount() > 0) kickClaims();
      if (Date.now() - lastSweep >= Math.max(ctx.settings.pollIntervalMs, ctx.settings.redeliverAfterMs / 2)) {
        lastSweep = Date.now();
        hub.sweepInflight(ctx.settings.redeliverAfterMs);
      }
      return false;
    },
    idle() {
      if (doneQueue.size > 0) void flushDones();
    },
    streamOpened(serverId) {
      // From memory: Harpoon's stream keeps the region's claims and placed events here.
      resendRunning(serverId);
      kickClaims();
    },
    claiming: () => claimsOnWire > 0,
    async readAckRows(ids) {
      const rows: AgentEvent[] = [];
      for (const id of ids) {
        hq('event');
        try {
          const event = await client.getEvent(id);
          if (event.server_id !== null) rows.push(rowOf(event));
        } catch (err) {
          if (err instanceof HarpoonClientError && err.status === 404) continue;
          metric.harpoonErrors.inc({ op: 'event' });
          throw err;
        }
      }
      return rows;
    },
    async complete(row, item): Promise<AckOutcome> {
      if (row.event_status !== 'running') return 'not_claimed';
      const outcome = await ctx.withAckConnection(async (conn): Promise<AckOutcome> => {
        ctx.countQuery('ack');
        return (await recordGuardedCompletion(conn, row, item.receivedAt, HOST_ROW_GUARD)) === 'recorded' ? 'acked' : 'duplicate';
      });
      // The MySQL half is committed; the event's done goes to Harpoon now (and is retried until it does).
      doneQueue.add(row.event_id);
      await flushDones();
      return outcome;
    },
    async close() {
      feed?.close();
      if (doneQueue.size > 0) await flushDones().catch(() => {});
    },
  };
}
