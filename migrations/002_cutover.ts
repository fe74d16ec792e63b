import type { Knex } from 'knex';

/**
 * Cutover state lives in MySQL so every proxy replica applies the same
 * routing and a restart loses nothing; the history is the audit trail.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('cutover_features', (t) => {
    t.string('feature', 64).primary();
    t.integer('step').notNullable().defaultTo(0);
    t.string('step_name', 128).notNullable().defaultTo('legacy');
    t.enu('mode', ['legacy', 'shadow', 'canary', 'full']).notNullable().defaultTo('legacy');
    t.decimal('percent', 5, 2).notNullable().defaultTo(0);
    // JSON array of region slugs, NULL for all regions.
    t.text('regions').nullable();
    t.boolean('paused').notNullable().defaultTo(false);
    t.integer('version').notNullable().defaultTo(1);
    // When the current step started soaking; the controller rolls back if a gate fails before soak ends.
    t.specificType('step_started_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  });
  await knex.schema.createTable('cutover_history', (t) => {
    t.bigIncrements('id');
    t.string('feature', 64).notNullable();
    t.string('action', 32).notNullable();
    t.integer('from_step').notNullable();
    t.integer('to_step').notNullable();
    t.string('actor', 128).notNullable();
    t.string('reason', 512).nullable();
    // Gate readings at the moment of the decision, as JSON.
    t.text('readings').nullable();
    t.specificType('at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['feature', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('cutover_history');
  await knex.schema.dropTableIfExists('cutover_features');
}
