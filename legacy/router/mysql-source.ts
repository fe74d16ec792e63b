/**
 * The Event Router's MySQL-polling source, retired with the migration: while
 * `event-writes` is below full the router polls `events` for the hosts
 * whose streams it holds, claims in one transaction per batch, and records
 * acks with `running → done` on `events`. Why a pending set rather than an
 * id cursor, and how redelivery works: router/README.md.
 *
 * The router never imports this file: the wiring of the legacy stages passes
 * `createMysqlEventSource` as `legacySource` (in process: an option; across
 * processes: MYSQL_SOURCE_MODULE, which router/main.ts imports by URL).
 */
import type { PoolConnection, ResultSetHeader } from 'mysql2/promise';
import type { AckOutcome, EventSource, EventSourceFactory } from '../../router/event-source.ts';
import { recordGuardedCompletion, type CompletionGuard } from '../../router/completion.ts';
import { IN_CHUNK, chunks } from '../../router/queries.ts';
import { claimBatch, countPending, eventStatus, fetchContext, fetchPendingIds, fetchRunning } from './queries.ts';

/** This module's URL, for ROUTER_LEGACY_SOURCE: router/main.ts imports it and uses its default export. */
export const MYSQL_SOURCE_MODULE = import.meta.url;

/** `running → done` first: the row lock serialises completions of one event, and a second one changes no row. */
const EVENTS_ROW_GUARD: CompletionGuard = {
  async lock(conn: PoolConnection, row) {
    const [done] = await conn.query<ResultSetHeader>("UPDATE events SET status = 'done', finished_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND status = 'running'", [
      row.event_id,
    ]);
    return done.affectedRows === 1;
  },
  freshDroplet: false,
};

/**
 * The same for an event this router delivered that may still be pending: one
 * the Harpoon source pushed before its claim got through, acked after a
 * switch back to MySQL. Claim and completion in one statement.
 */
const DELIVERED_ROW_GUARD: CompletionGuard = {
  async lock(conn: PoolConnection, row) {
    const [done] = await conn.query<ResultSetHeader>(
      "UPDATE events SET status = 'done', started_at = COALESCE(started_at, CURRENT_TIMESTAMP(3)), finished_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND status IN ('pending', 'running') AND server_id = ?",
      [row.event_id, row.server_id],
    );
    return done.affectedRows === 1;
  },
  freshDroplet: false,
};

/**
 * @example
 *   createEventRouter({ db, region: 'nyc1', secret, legacySource: createMysqlEventSource });
 */
export const createMysqlEventSource: EventSourceFactory = (ctx): EventSource => {
  const { pool, hub, metric, settings } = ctx;
  const q = ctx.countQuery;
  /** Hypervisors whose stream opened since the last poll: their `running` events are re-sent by the next one. */
  const fresh = new Set<number>();
  let claiming = false;
  let idlePolls = 0;
  let lastSweep = 0;

  /** One batch: pending ids of the connected hosts, claim, context, write. True when the batch was full. */
  async function claimAndDeliver(hosts: number[]): Promise<boolean> {
    let pending: Array<{ id: number; server_id: number }> = [];
    for (const part of chunks(hosts, IN_CHUNK)) {
      if (pending.length >= settings.batchSize) break;
      q('pending');
      pending = pending.concat(await fetchPendingIds(pool, part, settings.batchSize - pending.length));
    }
    // A host may have switched away while we read: claim only for streams still here.
    const wanted = pending.filter((p) => hub.streams.has(p.server_id)).map((p) => p.id);
    if (wanted.length > 0) {
      claiming = true;
      try {
        q('claim', 2);
        const claimed = await claimBatch(pool, wanted);
        if (claimed.length > 0) {
          q('context');
          for (const row of await fetchContext(pool, claimed)) hub.deliver(row, true);
        }
      } finally {
        claiming = false;
        ctx.claimsSettled();
      }
    }
    return pending.length >= settings.batchSize;
  }

  /**
   * Claims this host has had for a while without an ack, that its current
   * connection never carried: a claim whose write raced a reconnect to
   * another router, or one left by a killed router while the agent stayed
   * connected elsewhere. Also forgets old rows of hosts no longer here.
   */
  async function sweep(): Promise<void> {
    for (const part of chunks([...hub.streams.keys()], IN_CHUNK)) {
      q('redeliver');
      for (const row of await fetchRunning(pool, part, settings.redeliverAfterMs)) hub.deliver(row, false);
    }
    hub.forgetStale(Date.now() - Math.max(10 * settings.redeliverAfterMs, 5 * 60_000));
  }

  return {
    name: 'mysql',
    async activate() {
      // Every connected host's `running` events are re-sent by the next poll (minus what each stream carried).
      for (const id of hub.streams.keys()) fresh.add(id);
    },
    async deactivate() {
      fresh.clear();
    },
    idle() {},
    streamOpened(serverId) {
      // What this host has claimed and not acked (after our restart, or a reconnect from another router) is
      // re-sent by the next poll, in one statement for every stream opened since: a reconnect storm of
      // 15,000 agents costs 15 statements, not 15,000.
      fresh.add(serverId);
    },
    claiming: () => claiming,
    async tick() {
      if (fresh.size > 0) {
        const opened = [...fresh].filter((id) => hub.streams.has(id));
        fresh.clear();
        try {
          for (const part of chunks(opened, IN_CHUNK)) {
            q('running');
            for (const row of await fetchRunning(pool, part)) hub.deliver(row, false);
          }
        } catch (err) {
          for (const id of opened) fresh.add(id);
          throw err;
        }
      }
      q('backlog');
      const backlog = await countPending(pool, ctx.regionId);
      metric.pending.set(backlog);
      const hosts = [...hub.streams.keys()];
      if (hosts.length === 0) return false;
      let full = false;
      // Idle region: two statements per poll. The per-host read still runs every tenth idle poll, in case a
      // row's region_id ever disagreed with its host's region (the count is by event region, delivery by host).
      if (backlog > 0 || ++idlePolls % 10 === 0) {
        idlePolls = 0;
        full = await claimAndDeliver(hosts);
      }
      if (Date.now() - lastSweep >= Math.max(settings.pollIntervalMs, settings.redeliverAfterMs / 2)) {
        lastSweep = Date.now();
        await sweep();
      }
      return full;
    },
    readAckRows(ids) {
      q('event');
      return ctx.withAckSlot(() => fetchContext(pool, ids));
    },
    complete(row, item, delivered) {
      return ctx.withAckConnection(async (conn): Promise<AckOutcome> => {
        q('ack');
        const outcome = await recordGuardedCompletion(conn, row, item.receivedAt, delivered ? DELIVERED_ROW_GUARD : EVENTS_ROW_GUARD);
        if (outcome === 'recorded') return 'acked';
        if (outcome === 'already-recorded') return 'duplicate';
        q('event_status');
        const status = await eventStatus(conn, row.event_id);
        return status === 'done' ? 'duplicate' : status === undefined ? 'not_found' : 'not_claimed';
      });
    },
    async close() {},
  };
};

export default createMysqlEventSource;
