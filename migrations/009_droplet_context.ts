import type { Knex } from 'knex';

/**
 * What a droplet carried by 2016 besides its keys, features and addresses:
 * volumes, backups, snapshots and tags. The agent's god query joined them
 * all (legacy/dobe/god-query-2016.ts, 18 tables), which is why it grew past
 * 150 lines; the Event Router and Harpoon read none of them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('volumes', (t) => {
    t.increments('id');
    t.integer('droplet_id').unsigned().nullable().references('droplets.id');
    t.integer('region_id').unsigned().notNullable().references('regions.id');
    t.string('name', 64).notNullable();
    t.integer('size_gb').notNullable();
    t.index(['droplet_id']);
  });
  await knex.schema.createTable('backups', (t) => {
    t.increments('id');
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.string('status', 16).notNullable();
    t.integer('size_gb').notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['droplet_id']);
  });
  await knex.schema.createTable('snapshots', (t) => {
    t.increments('id');
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.string('name', 64).notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['droplet_id']);
  });
  await knex.schema.createTable('tags', (t) => {
    t.increments('id');
    t.integer('customer_id').unsigned().notNullable().references('customers.id');
    t.string('name', 64).notNullable();
    t.unique(['customer_id', 'name']);
  });
  await knex.schema.createTable('droplet_tags', (t) => {
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.integer('tag_id').unsigned().notNullable().references('tags.id');
    t.primary(['droplet_id', 'tag_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['droplet_tags', 'tags', 'snapshots', 'backups', 'volumes']) await knex.schema.dropTableIfExists(table);
}
