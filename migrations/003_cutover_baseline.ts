import type { Knex } from 'knex';

/**
 * The gate baseline of the current step: the counter and histogram values
 * the step's windowed gates read, scraped when the step started, so that
 * any replica (and a restarted one) judges the same soak window. JSON,
 * only the series the gates select; NULL until taken.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('cutover_features', (t) => {
    t.specificType('baseline', 'MEDIUMTEXT').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('cutover_features', (t) => {
    t.dropColumn('baseline');
  });
}
