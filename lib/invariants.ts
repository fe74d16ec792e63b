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
 * Events after `sinceEventId` that are pending or running, or done without an execution record.
 * With `olderThanSeconds`, only events created at least that long ago count: while a system runs,
 * an event in flight is not lost (the cutover's invariant gate counts it this way).
 */
export async function countLostEvents(db: Knex, options: { sinceEventId?: number; olderThanSeconds?: number } = {}): Promise<number> {
  const age = options.olderThanSeconds;
  const [[row]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM events e
      WHERE e.id > ? ${age !== undefined ? 'AND e.created_at < NOW(3) - INTERVAL ? SECOND' : ''}
        AND (e.status IN ('pending', 'running')
         OR (e.status = 'done' AND NOT EXISTS (SELECT 1 FROM event_executions x WHERE x.event_id = e.id)))`,
    [options.sinceEventId ?? 0, ...(age !== undefined ? [age] : [])],
  )) as [[{ n: number }]];
  return Number(row.n);
}

/** Executions beyond the first, over events after `sinceEventId`. */
export async function countDuplicateExecutions(db: Knex, options: { sinceEventId?: number } = {}): Promise<number> {
  const [[row]] = (await db.raw(
    `SELECT COALESCE(SUM(n - 1), 0) AS n FROM (SELECT COUNT(*) AS n FROM event_executions WHERE event_id > ? GROUP BY event_id HAVING COUNT(*) > 1) d`,
    [options.sinceEventId ?? 0],
  )) as [[{ n: number }]];
  return Number(row.n);
}

/** Hosts whose live droplets need more memory or disk than the host has after its reserve. */
export async function countOvercommittedHosts(db: Knex, hostReserved: { memory: number; disk: number }): Promise<number> {
  const [[row]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM (
       SELECT s.id
         FROM servers s
         JOIN droplets d ON d.server_id = s.id AND d.status NOT IN ('archived', 'error')
         JOIN sizes z ON z.id = d.size_id
        GROUP BY s.id, s.memory, s.disk
       HAVING SUM(z.memory) > s.memory - ? OR SUM(z.disk) > s.disk - ?
     ) o`,
    [hostReserved.memory, hostReserved.disk],
  )) as [[{ n: number }]];
  return Number(row.n);
}

/** Droplets after `sinceDropletId` without a create event (with `olderThanSeconds`: created at least that long ago, since an outbox relays later). */
export async function countDropletsWithoutEvent(db: Knex, options: { sinceDropletId?: number; olderThanSeconds?: number } = {}): Promise<number> {
  const age = options.olderThanSeconds;
  const [[row]] = (await db.raw(
    `SELECT COUNT(*) AS n FROM droplets d
      WHERE d.id > ? ${age !== undefined ? 'AND d.created_at < NOW(3) - INTERVAL ? SECOND' : ''}
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.droplet_id = d.id AND e.type = 'create')`,
    [options.sinceDropletId ?? 0, ...(age !== undefined ? [age] : [])],
  )) as [[{ n: number }]];
  return Number(row.n);
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
  const since = { sinceEventId: options.sinceEventId ?? 0 };
  return {
    lost_events: await countLostEvents(db, since),
    duplicate_executions: await countDuplicateExecutions(db, since),
    overcommitted_hosts: await countOvercommittedHosts(db, options.hostReserved),
    droplets_without_event: await countDropletsWithoutEvent(db, { sinceDropletId: options.sinceDropletId ?? 0 }),
  };
}
