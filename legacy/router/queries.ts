/**
 * The MySQL source's statements (legacy/router/mysql-source.ts): the god query, broken up. The legacy agent ran one 18-table query per
 * hypervisor per poll; the router runs, per region per poll, a handful of
 * small indexed statements and fetches the heavy context only for the
 * events it has just claimed:
 *
 *   state    cutover_features by primary key                      (1 row)
 *   backlog  COUNT over events(region_id, status, server_id)        (index only)
 *   pending  events(server_id, status) for the connected hosts      (ids only)
 *   claim    SELECT … FOR UPDATE + UPDATE by primary key, in one transaction
 *   context  the god query's columns for just the claimed ids
 */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { EVENT_CONTEXT_SUBQUERIES } from '../../domain/event-context-sql.ts';
import type { AgentEvent } from '../../contracts/agent-event.ts';

/**
 * The columns a DOBE agent needs (AgentEvent), joined for a set of events,
 * with the god query's own context subqueries (their index hints took 1,000
 * rows at 15,000 hosts from 4 s to 30 ms).
 */
const CONTEXT_SELECT = `
SELECT
  e.id               AS event_id,
  e.type             AS event_type,
  e.status           AS event_status,
  e.args             AS event_args,
  e.created_at       AS event_created_at,
  e.available_at     AS event_available_at,
  e.droplet_id       AS droplet_id,
  d.name             AS droplet_name,
  d.status           AS droplet_status,
  d.customer_id      AS customer_id,
  sz.slug            AS size_slug,
  sz.memory          AS size_memory,
  sz.vcpus           AS size_vcpus,
  sz.disk            AS size_disk,
  i.slug             AS image_slug,
  s.id               AS server_id,
  s.name             AS server_name,
${EVENT_CONTEXT_SUBQUERIES}
FROM events e
JOIN servers s          ON s.id = e.server_id
LEFT JOIN droplets d    ON d.id = e.droplet_id
LEFT JOIN sizes sz      ON sz.id = d.size_id
LEFT JOIN images i      ON i.id = d.image_id`;

function toRows(rows: RowDataPacket[]): AgentEvent[] {
  return rows.map((r) => ({
    ...(r as unknown as AgentEvent),
    event_id: Number(r.event_id),
    server_id: Number(r.server_id),
    server_running_events: Number(r.server_running_events),
    customer_droplets_on_server: Number(r.customer_droplets_on_server),
  }));
}

/** The full rows of the given events (any status). */
export async function fetchContext(db: Pool | PoolConnection, eventIds: number[]): Promise<AgentEvent[]> {
  if (eventIds.length === 0) return [];
  const [rows] = await db.query<RowDataPacket[]>(`${CONTEXT_SELECT}\nWHERE e.id IN (?)\nORDER BY e.id`, [eventIds]);
  return toRows(rows);
}

/**
 * Events claimed for these hosts and not yet done, oldest first. With
 * `olderThanMs`, only claims at least that old (the redelivery sweep).
 */
export async function fetchRunning(db: Pool, serverIds: number[], olderThanMs?: number, limit = 10_000): Promise<AgentEvent[]> {
  if (serverIds.length === 0) return [];
  const age =
    olderThanMs === undefined ? '' : 'AND (e.started_at IS NULL OR e.started_at < CURRENT_TIMESTAMP(3) - INTERVAL (? * 1000) MICROSECOND)';
  const params: unknown[] = [serverIds];
  if (olderThanMs !== undefined) params.push(Math.max(0, Math.round(olderThanMs)));
  params.push(limit);
  const [rows] = await db.query<RowDataPacket[]>(`${CONTEXT_SELECT}\nWHERE e.server_id IN (?) AND e.status = 'running' ${age}\nORDER BY e.id\nLIMIT ?`, params);
  return toRows(rows);
}

/** Unclaimed placed events of these hosts: ids only, via the (server_id, status) index. */
export async function fetchPendingIds(db: Pool, serverIds: number[], limit: number): Promise<Array<{ id: number; server_id: number }>> {
  if (serverIds.length === 0) return [];
  const [rows] = await db.query<RowDataPacket[]>(
    "SELECT id, server_id FROM events WHERE server_id IN (?) AND status = 'pending' ORDER BY id LIMIT ?",
    [serverIds, limit],
  );
  return rows.map((r) => ({ id: Number(r.id), server_id: Number(r.server_id) }));
}

/** The region's placed, unclaimed events: the backlog gauge (index-only on events(region_id, status, server_id)). */
export async function countPending(db: Pool, regionId: number): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM events WHERE region_id = ? AND status = 'pending' AND server_id IS NOT NULL",
    [regionId],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * pending → running for a batch, reporting exactly which rows this call
 * claimed: the locking read takes the rows still pending (another router
 * or a legacy agent may have taken some), the UPDATE moves just those.
 * MariaDB has no UPDATE … RETURNING, and a bare conditional UPDATE only
 * says how many rows it won, not which. The read goes by primary key
 * (record locks, no gap locks: the pool runs READ COMMITTED), so it never
 * blocks the services inserting new events.
 */
export async function claimBatch(pool: Pool, eventIds: number[]): Promise<number[]> {
  if (eventIds.length === 0) return [];
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    try {
      const [locked] = await conn.query<RowDataPacket[]>("SELECT id FROM events FORCE INDEX (PRIMARY) WHERE id IN (?) AND status = 'pending' FOR UPDATE", [eventIds]);
      const ids = locked.map((r) => Number(r.id));
      if (ids.length > 0) {
        await conn.query<ResultSetHeader>("UPDATE events SET status = 'running', started_at = CURRENT_TIMESTAMP(3) WHERE id IN (?)", [ids]);
      }
      await conn.commit();
      return ids;
    } catch (err) {
      await conn.rollback().catch(() => {});
      throw err;
    }
  } finally {
    conn.release();
  }
}

export async function eventStatus(db: Pool | PoolConnection, eventId: number): Promise<string | undefined> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT status FROM events WHERE id = ?', [eventId]);
  return rows[0]?.status as string | undefined;
}

