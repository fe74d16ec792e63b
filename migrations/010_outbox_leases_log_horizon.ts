import type { Knex } from 'knex';

/**
 * Two things that let work outlive the process holding it (issue 12):
 *
 * - `event_outbox` lease columns: a row belongs to the Cloud that wrote it
 *   (`lease_owner`) until `lease_until`; the holder renews it while it
 *   retries, and any live Cloud takes rows whose lease expired with one
 *   atomic `UPDATE … WHERE lease_until < NOW(3)`, so a dead Cloud's rows are
 *   relayed by another within a lease instead of at the next restart.
 *   `attempts` and `last_error` survive a take-over; `parked_at` marks a row
 *   no Cloud will relay again (Harpoon refused it, or it failed too often)
 *   until an operator clears it (runbooks/errors.md: CLOUD_ERR_OUTBOX_PARKED).
 *   Rows written before this migration get `lease_until` = now: takeable at once.
 * - `event_log_horizon`: the highest cursor whose entries were pruned from
 *   `event_log`. A subscriber resuming from below it gets an explicit
 *   "too old" answer instead of a stream that silently skips the pruned
 *   entries; it is updated in the same transaction as each pruned batch.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('event_outbox', (t) => {
    t.string('lease_owner', 100).nullable();
    t.specificType('lease_until', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.string('last_error', 500).nullable();
    t.specificType('parked_at', 'DATETIME(3)').nullable();
    t.index(['parked_at', 'lease_until'], 'event_outbox_lease');
  });
  await knex.schema.createTable('event_log_horizon', (t) => {
    t.tinyint('id').unsigned().primary();
    t.bigInteger('pruned_through').unsigned().notNullable().defaultTo(0);
  });
  await knex('event_log_horizon').insert({ id: 1, pruned_through: 0 });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('event_log_horizon');
  await knex.schema.alterTable('event_outbox', (t) => {
    t.dropIndex(['parked_at', 'lease_until'], 'event_outbox_lease');
    t.dropColumn('parked_at');
    t.dropColumn('last_error');
    t.dropColumn('attempts');
    t.dropColumn('lease_until');
    t.dropColumn('lease_owner');
  });
}
