import type { Knex } from 'knex';
import { summarizeLatency, type LatencySummary } from '../lib/metrics/sample-percentiles.ts';

/**
 * Delivery latency of a range of events: `available_at` (committed for
 * its host) → `received_at` (the agent had it), both in the database.
 */
export async function eventLatency(db: Knex, range: EventRange): Promise<LatencySummary> {
  const [rows] = (await db.raw(
    `SELECT TIMESTAMPDIFF(MICROSECOND, e.available_at, x.received_at) / 1000 AS ms
       FROM events e JOIN event_executions x ON x.event_id = e.id
      WHERE e.id > ? AND e.id <= ?`,
    [range.afterId, range.lastId],
  )) as [Array<{ ms: number }>];
  return summarizeLatency(rows.map((r) => Math.max(0, Number(r.ms))));
}

/** Events of a range an agent has received so far (the latency sample's size while traffic runs). */
export async function executedEvents(db: Knex, afterId: number): Promise<number> {
  const [[row]] = (await db.raw('SELECT COUNT(DISTINCT x.event_id) AS n FROM event_executions x WHERE x.event_id > ?', [afterId])) as [[{ n: number }]];
  return Number(row.n);
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
