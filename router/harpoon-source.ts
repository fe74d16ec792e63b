/**
 * The router's Harpoon source (`event-writes` at full): the region's events
 * come from Harpoon's stream (harpoon-feed.ts), claims and `done` go through
 * Harpoon, and the router sends no statement on `events`. The switch rule,
 * the crash-safe completion and the latency figures: router/README.md.
 *
 * Push and claim together: a placed event for a host whose stream is here
 * is written to that stream as soon as Harpoon's stream brings it, and its
 * claim (pending → running) goes out in the same turn, batched. The ack
 * waits for that claim if it is still on the wire, and claims the event
 * itself if no claim got through (a claim refused for a moment, or a router
 * killed between the push and the claim: the next one finds the event
 * pending, pushes it, and the agent's repeated ack claims it). So an event
 * is recorded only once it is running, and exactly once (completion.ts).
 */
import { StranglerError } from '../lib/errors.ts';
import { createHarpoonClient, HarpoonClientError, type HarpoonClient } from '../harpoon/client.ts';
import type { HarpoonEvent } from '../harpoon/types.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';
import { HOST_ROW_GUARD, executedAmong, recordGuardedCompletion } from './completion.ts';
import type { AckOutcome, EventSource, SourceContext } from './event-source.ts';
import { loadContextCaches, type ContextCaches } from './harpoon-context.ts';
import { createHarpoonFeed, type HarpoonFeed } from './harpoon-feed.ts';
import { routerError } from './errors.ts';
import { chunks } from './queries.ts';

/** A pushed event's ack whose claim did not get through: a 503 the agent retries. */
function claimFailed(eventId: number, cause: unknown): StranglerError {
  return routerError('ROUTER_ERR_CLAIM_FAILED', `event ${eventId} could not be claimed through Harpoon just now; retry the ack`, cause);
}

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
  /** Events on a claim request now, and that request's settling (an ack of one waits for it). */
  const claimingIds = new Map<number, Promise<void>>();
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
      push(event);
      kickClaims();
    }
  }

  /** A placed event to its host's stream before its claim (the claim follows in the same turn). */
  function push(event: HarpoonEvent): void {
    hub.deliver(rowOf(event), !hub.inflight.has(event.id));
  }

  /** A host's placed events (pushed now unless its stream carried them) and claimed ones (re-sent). */
  function sendOpen(serverId: number): void {
    if (!feed) return;
    resendRunning(serverId);
    for (const e of feed.pendingOf(serverId)) push(e);
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
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    for (const id of ids) claimingIds.set(id, settled);
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
          // Pushed already: this only records the claim on the in-flight row (and sends it to a stream that reconnected since).
          if (r.event.status === 'running' && r.event.server_id !== null) hub.deliver(rowOf(r.event), false);
        } else if (r.error.code === 'HARPOON_ERR_ILLEGAL_TRANSITION') {
          claimBackoff.delete(r.id);
          current.forget(r.id);
        } else {
          claimBackoff.set(r.id, Date.now() + 1000);
          log.warn({ event_id: r.id, code: r.error.code }, 'Harpoon refused a claim; retrying in a second');
        }
      }
    } finally {
      for (const id of ids) if (claimingIds.get(id) === settled) claimingIds.delete(id);
      settle();
      claimsOnWire--;
      if (claimsOnWire === 0) ctx.claimsSettled();
      if (again || claimAgain) {
        claimAgain = false;
        kickClaims();
      }
    }
  }

  /**
   * An acked event's status once it is ours to complete: a claim on the wire
   * is waited for; an event still pending (pushed, and no claim got through)
   * is claimed now. 'done' when it turned out finished already.
   */
  async function claimedStatus(row: AgentEvent, delivered: boolean): Promise<string | undefined> {
    await claimingIds.get(row.event_id);
    const status = feed?.statusOf(row.event_id) ?? row.event_status;
    if (status !== 'pending' || !delivered) return status;
    hq('claim');
    let results: Awaited<ReturnType<HarpoonClient['setStatuses']>>;
    try {
      results = await client.setStatuses([{ id: row.event_id, status: 'running' }]);
    } catch (err) {
      metric.harpoonErrors.inc({ op: 'claim' });
      throw claimFailed(row.event_id, err);
    }
    const r = results[0];
    if (r && 'event' in r) {
      feed?.apply(r.event);
      return r.event.status;
    }
    // Refused: finished already (then its status says so), or a refusal for the moment; the agent retries the ack.
    if (r?.error.code !== 'HARPOON_ERR_ILLEGAL_TRANSITION') throw claimFailed(row.event_id, r?.error);
    hq('event');
    return (await client.getEvent(row.event_id)).status;
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
      for (const serverId of hub.streams.keys()) sendOpen(serverId);
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
      sendOpen(serverId);
      kickClaims();
    },
    // A claim scheduled counts too: a pushed event's claim goes out before its host may be switched away.
    claiming: () => claimsOnWire > 0 || claimScheduled,
    async readAckRows(ids) {
      const rows: AgentEvent[] = [];
      for (const id of ids) {
        hq('event');
        try {
          const event = await client.getEvent(id);
          if (event.server_id !== null) rows.push(rowOf(event));
        } catch (err) {
          // 404: no such event; 403: another region's (this router's token reads its own region only). Not ours to ack either way.
          if (err instanceof HarpoonClientError && (err.status === 404 || err.status === 403)) continue;
          metric.harpoonErrors.inc({ op: 'event' });
          throw err;
        }
      }
      return rows;
    },
    async complete(row, item, delivered): Promise<AckOutcome> {
      const status = await claimedStatus(row, delivered);
      if (status === 'done') return 'duplicate';
      if (status !== 'running') return 'not_claimed';
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
