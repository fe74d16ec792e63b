import type { Knex } from 'knex';

/** The three numbers users trust a migration tool for, counted from the database itself. */
export interface Invariants {
  /** Events that were never executed: still pending/running after the drain, or done without an execution record. */
  lost_events: number;
  /** Executions beyond the first, over all events. */
  duplicate_executions: number;
  /** Hosts whose placed droplets need more memory or disk than they have (vCPUs are overcommitted by design). */
  overcommitted_hosts: number;
  /** Droplets of this run (id > sinceDropletId) whose create event is missing. */
  droplets_without_event: number;
}

/**
 * Checks what must hold after any run. `sinceEventId` limits the event
 * checks to events of this run (seeded ones are older).
 *
 * @example
 *   const inv = await checkInvariants(adminDb, { hostReserved: { memory: 2048, disk: 50 } });
 */
export async function checkInvariants(
  db: Knex,
  options: { sinceEventId?: number; sinceDropletId?: number; hostReserved: { memory: number; disk: number } },
): Promise<Invariants> {
  const since = options.sinceEventId ?? 0;
  const [[lost]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM events e
      WHERE e.id > ? AND (e.status IN ('pending', 'running')
         OR (e.status = 'done' AND NOT EXISTS (SELECT 1 FROM event_executions x WHERE x.event_id = e.id)))`,
    [since],
  )) as [[{ n: number }]];
  const [[dups]] = (await db.raw(
    `SELECT COALESCE(SUM(n - 1), 0) AS n FROM (SELECT COUNT(*) AS n FROM event_executions WHERE event_id > ? GROUP BY event_id HAVING COUNT(*) > 1) d`,
    [since],
  )) as [[{ n: number }]];
  const [[over]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM (
       SELECT s.id
         FROM servers s
         JOIN droplets d ON d.server_id = s.id AND d.status NOT IN ('archived', 'error')
         JOIN sizes z ON z.id = d.size_id
        GROUP BY s.id, s.memory, s.disk
       HAVING SUM(z.memory) > s.memory - ? OR SUM(z.disk) > s.disk - ?
     ) o`,
    [options.hostReserved.memory, options.hostReserved.disk],
  )) as [[{ n: number }]];
  const [[orphans]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM droplets d
      WHERE d.id > ? AND NOT EXISTS (SELECT 1 FROM events e WHERE e.droplet_id = d.id AND e.type = 'create')`,
    [options.sinceDropletId ?? 0],
  )) as [[{ n: number }]];
  return {
    lost_events: Number(lost.n),
    duplicate_executions: Number(dups.n),
    overcommitted_hosts: Number(over.n),
    droplets_without_event: Number(orphans.n),
  };
}
