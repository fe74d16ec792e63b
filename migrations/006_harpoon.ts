import type { Knex } from 'knex';
import { EVENT_STATUSES, EVENT_TYPES } from '../domain/events.ts';

/**
 * Harpoon's tables (harpoon/README.md):
 *
 * - `event_log`: one row per change Harpoon commits to `events` (a create,
 *   a status change, a placement), written in the same transaction as the
 *   change. Its id is the stream cursor. Writers take the `harpoon_lock` row
 *   first, so ids are allocated and committed in the same order by every
 *   replica: once id N is visible, no id below N will ever appear. A rolled
 *   back batch leaves a hole, never a late arrival.
 * - `harpoon_lock`: the single row that serialises log writers.
 * - `events.harpoon_key`: an optional idempotency key per create, so a
 *   writer that retries (Cloud's outbox after a timeout) never creates an
 *   event twice.
 * - `harpoon_lockdown`: what the lockdown revoked and granted, so that its
 *   rollback restores exactly the grants that were there before.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_log', (t) => {
    t.bigIncrements('id');
    t.bigInteger('event_id').unsigned().notNullable();
    t.enu('kind', ['created', 'status', 'placed']).notNullable();
    t.integer('region_id').unsigned().notNullable();
    t.enu('type', [...EVENT_TYPES]).notNullable();
    t.enu('status', [...EVENT_STATUSES]).notNullable();
    t.integer('server_id').unsigned().nullable();
    // The event as it was after this change (JSON), so a resume reads one table and sees each step.
    t.text('payload').notNullable();
    t.specificType('committed_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['event_id']);
  });
  await knex.schema.createTable('harpoon_lock', (t) => {
    t.tinyint('id').unsigned().primary();
  });
  await knex('harpoon_lock').insert({ id: 1 });
  await knex.schema.alterTable('events', (t) => {
    t.string('harpoon_key', 64).nullable().unique('events_harpoon_key');
  });
  await knex.schema.createTable('harpoon_lockdown', (t) => {
    t.bigIncrements('id');
    t.string('grantee', 200).notNullable();
    t.enu('action', ['revoked', 'granted']).notNullable();
    t.string('table_name', 64).nullable();
    t.string('privilege', 64).notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('harpoon_lockdown');
  await knex.schema.alterTable('events', (t) => {
    t.dropUnique(['harpoon_key'], 'events_harpoon_key');
    t.dropColumn('harpoon_key');
  });
  await knex.schema.dropTableIfExists('harpoon_lock');
  await knex.schema.dropTableIfExists('event_log');
}
