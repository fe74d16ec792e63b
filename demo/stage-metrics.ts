import type { Knex } from 'knex';

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Delivery latency of a range of events: `available_at` (committed for
 * its host) → `received_at` (the agent had it), both in the database.
 */
export async function eventLatency(db: Knex, range: EventRange): Promise<{ p50: number; p99: number; count: number }> {
  const [rows] = (await db.raw(
    `SELECT TIMESTAMPDIFF(MICROSECOND, e.available_at, x.received_at) / 1000 AS ms
       FROM events e JOIN event_executions x ON x.event_id = e.id
      WHERE e.id > ? AND e.id <= ?`,
    [range.afterId, range.lastId],
  )) as [Array<{ ms: number }>];
  const values = rows.map((r) => Math.max(0, Number(r.ms))).sort((a, b) => a - b);
  return { p50: round(percentile(values, 50)), p99: round(percentile(values, 99)), count: values.length };
}

/** The events a stage wrote: ids after `afterId`, up to and including `lastId`. */
export interface EventRange {
  afterId: number;
  lastId: number;
}

export async function maxEventId(db: Knex): Promise<number> {
  const [[row]] = (await db.raw('SELECT COALESCE(MAX(id), 0) AS n FROM events')) as [[{ n: number }]];
  return Number(row.n);
}

/** How many events of a range exist, and how many are done or errored now. */
export async function eventCounts(db: Knex, range: EventRange): Promise<{ created: number; done: number; error: number }> {
  const [[row]] = (await db.raw(
    `SELECT COUNT(*) AS created, COALESCE(SUM(status = 'done'), 0) AS done, COALESCE(SUM(status = 'error'), 0) AS error
       FROM events WHERE id > ? AND id <= ?`,
    [range.afterId, range.lastId],
  )) as [[{ created: number; done: number; error: number }]];
  return { created: Number(row.created), done: Number(row.done), error: Number(row.error) };
}

/** Events not finished yet (the drain waits for zero). */
export async function unfinishedEvents(db: Knex, sinceEventId: number): Promise<number> {
  const [[row]] = (await db.raw("SELECT COUNT(*) AS n FROM events WHERE id > ? AND status IN ('pending', 'running')", [sinceEventId])) as [
    [{ n: number }],
  ];
  return Number(row.n);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
