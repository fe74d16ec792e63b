import type { Knex } from 'knex';

/**
 * The Event Router's one index. Its queries by host (`server_id IN (…) AND
 * status = …`) use the legacy `(server_id, status)` index; what the legacy
 * schema lacks is a region-wide view of the queue: the backlog gauge
 * (`router_pending_events`) counts a region's placed, unclaimed events
 * every poll, which without this index scans every region's pending rows.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.index(['region_id', 'status', 'server_id'], 'events_router_region_status_server');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.dropIndex(['region_id', 'status', 'server_id'], 'events_router_region_status_server');
  });
}
