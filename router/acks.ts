/**
 * Acknowledgements: an agent's ack becomes one completion per event,
 * recorded by the source that owns events when the ack arrived. Rows come
 * from memory when this process delivered them, else from the source;
 * ownership of every item is checked before anything is written; within
 * this process one completion of an event runs at a time (across processes
 * the completion's row locks decide).
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { AgentEvent } from '../contracts/agent-event.ts';
import type { AckOutcome, EventSource } from './event-source.ts';
import type { RouterMetrics } from './metrics.ts';
import { routerError } from './errors.ts';
import type { AckItem } from './protocol.ts';
import type { StreamHub } from './streams.ts';

export interface AckSlots {
  withSlot<T>(fn: () => Promise<T>): Promise<T>;
  withConnection<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T>;
}

/**
 * Acks take at most poolSize - 1 connections, so a flood of acks never
 * queues the poll (and with it every delivery) behind them.
 *
 * @example
 *   const slots = createAckSlots(pool, 5);
 *   await slots.withConnection((conn) => conn.query('SELECT 1'));
 */
export function createAckSlots(pool: Pool, poolSize: number): AckSlots {
  let free = poolSize - 1;
  const waiters: Array<() => void> = [];
  async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiters.push(r));
    try {
      return await fn();
    } finally {
      const next = waiters.shift();
      if (next) next();
      else free++;
    }
  }
  return {
    withSlot,
    withConnection: (fn) =>
      withSlot(async () => {
        const conn = await pool.getConnection();
        try {
          return await fn(conn);
        } finally {
          conn.release();
        }
      }),
  };
}

export interface AckResult {
  event_id: number;
  outcome: AckOutcome;
}

export interface AckProcessor {
  /** Records a host's acks on `source`; throws a 403 StranglerError (nothing recorded) if an item is another host's. */
  acknowledge(serverId: number, items: AckItem[], source: EventSource): Promise<AckResult[]>;
  /** Completions in progress, for close() to wait on. */
  pending(): Promise<unknown>[];
  acked(): number;
}

/**
 * @example
 *   const acks = createAckProcessor({ hub, metric });
 *   const results = await acks.acknowledge(7, items, source);
 */
export function createAckProcessor(options: { hub: StreamHub; metric: RouterMetrics }): AckProcessor {
  const { hub, metric } = options;
  /** Acks in progress per event: one at a time per event in this process. */
  const completing = new Map<number, Promise<AckOutcome>>();
  let acked = 0;

  async function complete(row: AgentEvent, item: AckItem, source: EventSource, delivered: boolean): Promise<AckOutcome> {
    const previous = completing.get(row.event_id);
    const run = (async () => {
      if (previous) await previous.catch(() => {});
      if (row.event_status === 'done') return 'duplicate' as const;
      return source.complete(row, item, delivered);
    })();
    completing.set(row.event_id, run);
    try {
      return await run;
    } finally {
      if (completing.get(row.event_id) === run) completing.delete(row.event_id);
    }
  }

  return {
    async acknowledge(serverId, items, source) {
      // Rows: from memory when this router delivered them, else one read for the rest.
      const rows = new Map<number, AgentEvent>();
      /** Events this process wrote to a stream: they may be acked before (or without) their claim. */
      const delivered = new Set<number>();
      const missing: number[] = [];
      for (const item of items) {
        const known = hub.inflight.get(item.eventId)?.row;
        // A copy: the source decides from its status (on Harpoon a pushed event may not be claimed yet).
        if (known) {
          rows.set(item.eventId, { ...known });
          delivered.add(item.eventId);
        }
        else missing.push(item.eventId);
      }
      if (missing.length > 0) {
        for (const row of await source.readAckRows([...new Set(missing)])) rows.set(row.event_id, row);
      }
      // Ownership of every item before anything is written.
      for (const item of items) {
        const row = rows.get(item.eventId);
        if (row && row.server_id !== serverId) {
          throw routerError('ROUTER_ERR_FORBIDDEN', `event ${item.eventId} belongs to another hypervisor; nothing was recorded`);
        }
      }
      const results: AckResult[] = [];
      for (const item of items) {
        const row = rows.get(item.eventId);
        const outcome = row ? await complete(row, item, source, delivered.has(item.eventId)) : 'not_found';
        if (outcome === 'acked' || outcome === 'duplicate') {
          hub.settled(item.eventId, serverId);
          if (row) row.event_status = 'done';
        }
        if (outcome === 'acked') {
          metric.acked.inc();
          acked++;
        } else if (outcome === 'duplicate') {
          metric.duplicateAcks.inc();
        }
        results.push({ event_id: item.eventId, outcome });
      }
      return results;
    },
    pending: () => [...completing.values()],
    acked: () => acked,
  };
}
