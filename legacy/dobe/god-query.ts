/**
 * The god query: what every DOBE agent ran against MySQL in an infinite
 * loop, over its own connection, to find its work. It grew one join per
 * feature (the 2016 version passed 150 lines and 18 tables); this replica
 * keeps its shape — the event, its droplet, the droplet's whole context,
 * the host, and the host's other in-flight work — so its cost on the
 * server is the real pathology, not a stand-in.
 *
 * Parameters: godQueryParams(server_id) — the status is a parameter so the
 * same query can find the host's own claimed-but-unfinished ('running')
 * events after an agent restart.
 */
import { EVENT_CONTEXT_SUBQUERIES } from '../../domain/event-context-sql.ts';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { GOD_QUERY_2016 } from './god-query-2016.ts';
import { GOD_QUERY_FROM } from './god-query-scope.ts';

export const GOD_QUERY = `
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
  d.locked           AS droplet_locked,
  c.id               AS customer_id,
  c.email            AS customer_email,
  c.status           AS customer_status,
  sz.slug            AS size_slug,
  sz.memory          AS size_memory,
  sz.vcpus           AS size_vcpus,
  sz.disk            AS size_disk,
  i.slug             AS image_slug,
  i.distribution     AS image_distribution,
  i.min_disk_size    AS image_min_disk_size,
  k.version          AS kernel_version,
  dr.slug            AS droplet_region_slug,
  s.id               AS server_id,
  s.name             AS server_name,
  s.memfree          AS server_memfree,
  s.diskfree_actual  AS server_diskfree_actual,
  s.vmcount          AS server_vmcount,
  s.state            AS server_state,
  sr.slug            AS server_region_slug,
${EVENT_CONTEXT_SUBQUERIES}
${GOD_QUERY_FROM}
ORDER BY e.id
LIMIT 100`;

/** One row of the god query: the event an agent executes (contracts/agent-event.ts). */
export type GodQueryRow = AgentEvent;

export function godQueryParams(serverId: number, status: 'pending' | 'running' = 'pending'): [number, string, number, number] {
  return [serverId, status, serverId, serverId];
}

/** Which god query the legacy agents run: the 2016 one (18 tables, no hints, no LIMIT) or this replica's optimized one. */
export type GodQueryVariant = '2016' | 'optimized';

export const GOD_QUERY_VARIANTS: readonly GodQueryVariant[] = ['2016', 'optimized'];

/**
 * The SQL of a variant; both take godQueryParams and answer the same AgentEvent columns.
 *
 * @example
 *   const [rows] = await conn.query(godQuerySql('2016'), godQueryParams(serverId));
 */
export function godQuerySql(variant: GodQueryVariant): string {
  return variant === '2016' ? GOD_QUERY_2016 : GOD_QUERY;
}
