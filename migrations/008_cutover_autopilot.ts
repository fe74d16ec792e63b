import type { Knex } from 'knex';

/**
 * The autopilot's state (proxy/cutover/autopilot-store.ts): one row per
 * feature with its run (started by `strangler cutover run`), the analysis
 * counters of the current step, and the lease of the admin replica doing
 * the analysis, so a restart or another replica resumes where it stood.
 * `cutover_analysis_runs` keeps each analysis run's verdict and readings.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('cutover_autopilot', (t) => {
    t.string('feature', 64).primary();
    // idle, running, waiting (manual judgement), done, rolled-back, stopped
    t.string('run', 16).notNullable().defaultTo('idle');
    // Part of `run --all`: when this feature is done, the next feature of the plan starts.
    t.boolean('run_all').notNullable().defaultTo(false);
    t.string('run_actor', 128).nullable();
    t.specificType('run_started_at', 'DATETIME(3)').nullable();
    // `promote` approves leaving the manual-judgement step at this version of the feature's row.
    t.integer('approved_version').nullable();
    // The counters below belong to this version of the feature's row (a new step starts them again).
    t.integer('feature_version').notNullable().defaultTo(0);
    t.integer('checks').notNullable().defaultTo(0);
    t.integer('passes').notNullable().defaultTo(0);
    t.integer('failures').notNullable().defaultTo(0);
    t.integer('no_data').notNullable().defaultTo(0);
    t.string('last_outcome', 16).nullable();
    t.specificType('last_check_at', 'DATETIME(3)').nullable();
    t.specificType('next_check_at', 'DATETIME(3)').nullable();
    t.string('waiting', 512).nullable();
    t.specificType('readings', 'MEDIUMTEXT').nullable();
    t.string('owner', 128).nullable();
    t.specificType('lease_until', 'DATETIME(3)').nullable();
    t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  });
  await knex.schema.createTable('cutover_analysis_runs', (t) => {
    t.bigIncrements('id');
    t.string('feature', 64).notNullable();
    t.integer('feature_version').notNullable();
    t.integer('step').notNullable();
    t.string('step_name', 128).notNullable();
    t.string('outcome', 16).notNullable();
    t.boolean('soaked').notNullable();
    t.integer('passes').notNullable();
    t.integer('failures').notNullable();
    t.text('readings').nullable();
    t.specificType('at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['feature', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('cutover_analysis_runs');
  await knex.schema.dropTableIfExists('cutover_autopilot');
}
