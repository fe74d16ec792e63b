import type { Knex } from 'knex';
import { HOST_RESERVED } from '../domain/catalog.ts';
import { checkInvariants, type Invariants } from '../lib/invariants.ts';
import { eventCounts, maxEventId, unfinishedEvents } from '../demo/stage-metrics.ts';

export interface FinalCheck extends Invariants {
  events_created: number;
  events_done: number;
  events_error: number;
  /** Events still pending or running when the drain gave up (counted in lost_events too). */
  unfinished_after_drain: number;
  drain_seconds: number;
  /** Executions recorded by the agents for this run's events. */
  executions: number;
  /** Up to 20 of the events left unfinished, as the database has them (for the diagnosis: placed or not, claimed by whom). */
  unfinished_sample: Array<Record<string, unknown>>;
}

/**
 * The end of a chaos run: waits while the queue keeps shrinking (giving up
 * after `stallMs` without progress), then counts from the database and the
 * agents' execution records (`event_executions`) what was created, done,
 * lost, executed twice, over-committed, and which droplets have no event.
 *
 * @example
 *   const result = await finalCheck(db, { sinceEventId, sinceDropletId, onWait: (n) => progress.update(`${n} left`) });
 */
export async function finalCheck(
  db: Knex,
  options: { sinceEventId: number; sinceDropletId: number; stallMs?: number; maxMs?: number; onWait?: (left: number) => void },
): Promise<FinalCheck> {
  const began = Date.now();
  const stallMs = options.stallMs ?? 60_000;
  const hardDeadline = began + (options.maxMs ?? 600_000);
  let left = await unfinishedEvents(db, options.sinceEventId);
  let best = left;
  let lastProgress = Date.now();
  while (left > 0 && Date.now() - lastProgress < stallMs && Date.now() < hardDeadline) {
    options.onWait?.(left);
    await new Promise((r) => setTimeout(r, 1000));
    left = await unfinishedEvents(db, options.sinceEventId);
    if (left < best) {
      best = left;
      lastProgress = Date.now();
    }
  }
  const counts = await eventCounts(db, { afterId: options.sinceEventId, lastId: await maxEventId(db) });
  const invariants = await checkInvariants(db, { sinceEventId: options.sinceEventId, sinceDropletId: options.sinceDropletId, hostReserved: HOST_RESERVED });
  const [[x]] = (await db.raw('SELECT COUNT(*) AS n FROM event_executions WHERE event_id > ?', [options.sinceEventId])) as [[{ n: number }]];
  const [sample] = (await db.raw(
    `SELECT e.id, e.type, e.status, e.region_id, e.server_id, e.droplet_id, e.claimed_by, e.claim_expires_at, e.created_at, e.available_at, e.started_at,
            d.status AS droplet_status, d.server_id AS droplet_server_id,
            (SELECT COUNT(*) FROM placement_decisions p WHERE p.event_id = e.id) AS v2_decisions
       FROM events e LEFT JOIN droplets d ON d.id = e.droplet_id
      WHERE e.id > ? AND e.status IN ('pending', 'running') ORDER BY e.id LIMIT 20`,
    [options.sinceEventId],
  )) as [Array<Record<string, unknown>>];
  return {
    events_created: counts.created,
    events_done: counts.done,
    events_error: counts.error,
    ...invariants,
    unfinished_after_drain: left,
    drain_seconds: Math.round((Date.now() - began) / 100) / 10,
    executions: Number(x.n),
    unfinished_sample: sample,
  };
}
