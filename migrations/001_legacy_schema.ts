import type { Knex } from 'knex';
import { EVENT_STATUSES, EVENT_TYPES } from '../domain/events.ts';

/**
 * The 2016 schema: one database that is both the system of record and the
 * message queue (the `events` table). Column names follow the seed's Perl
 * (memfree, diskfree_actual, vmcount, error_count, state).
 * Units: memory in MB, disk in GB.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('regions', (t) => {
    t.increments('id');
    t.string('slug', 32).notNullable().unique();
    t.string('name', 64).notNullable();
    t.boolean('available').notNullable().defaultTo(true);
  });
  await knex.schema.createTable('sizes', (t) => {
    t.increments('id');
    t.string('slug', 32).notNullable().unique();
    t.integer('memory').notNullable();
    t.integer('vcpus').notNullable();
    t.integer('disk').notNullable();
    t.decimal('price_monthly', 8, 2).notNullable();
  });
  await knex.schema.createTable('images', (t) => {
    t.increments('id');
    t.string('slug', 64).notNullable().unique();
    t.string('name', 128).notNullable();
    t.string('distribution', 32).notNullable();
    t.integer('min_disk_size').notNullable();
  });
  await knex.schema.createTable('kernels', (t) => {
    t.increments('id');
    t.string('name', 128).notNullable();
    t.string('version', 64).notNullable();
  });
  await knex.schema.createTable('customers', (t) => {
    t.increments('id');
    t.string('email', 255).notNullable().unique();
    t.string('name', 128).notNullable();
    // Only the digest is stored; the bearer token itself is never persisted.
    t.specificType('api_token_sha256', 'CHAR(64)').notNullable().unique();
    t.integer('droplet_limit').notNullable().defaultTo(25);
    t.string('status', 16).notNullable().defaultTo('active');
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  });
  await knex.schema.createTable('ssh_keys', (t) => {
    t.increments('id');
    t.integer('customer_id').unsigned().notNullable().references('customers.id');
    t.string('name', 128).notNullable();
    t.string('fingerprint', 64).notNullable();
    t.text('public_key').notNullable();
  });
  await knex.schema.createTable('servers', (t) => {
    t.increments('id');
    t.string('name', 32).notNullable().unique();
    t.integer('region_id').unsigned().notNullable().references('regions.id');
    t.integer('cpus').notNullable();
    t.integer('memory').notNullable();
    t.integer('disk').notNullable();
    t.integer('vmcount').notNullable().defaultTo(0);
    t.integer('memfree').notNullable();
    t.integer('diskfree_actual').notNullable();
    t.integer('error_count').notNullable().defaultTo(0);
    // '' means in service; anything else ('maintenance', 'draining', …) keeps the scheduler away.
    t.string('state', 32).notNullable().defaultTo('');
    t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['region_id']);
  });
  await knex.schema.createTable('droplets', (t) => {
    t.increments('id');
    t.integer('customer_id').unsigned().notNullable().references('customers.id');
    t.string('name', 255).notNullable();
    t.integer('region_id').unsigned().notNullable().references('regions.id');
    t.integer('size_id').unsigned().notNullable().references('sizes.id');
    t.integer('image_id').unsigned().notNullable().references('images.id');
    t.integer('kernel_id').unsigned().nullable().references('kernels.id');
    t.integer('server_id').unsigned().nullable().references('servers.id');
    t.string('status', 16).notNullable().defaultTo('new');
    t.boolean('locked').notNullable().defaultTo(false);
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.specificType('updated_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['customer_id', 'server_id']);
    t.index(['server_id']);
  });
  await knex.schema.createTable('droplet_ssh_keys', (t) => {
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.integer('ssh_key_id').unsigned().notNullable().references('ssh_keys.id');
    t.primary(['droplet_id', 'ssh_key_id']);
  });
  await knex.schema.createTable('droplet_features', (t) => {
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.string('feature', 32).notNullable();
    t.primary(['droplet_id', 'feature']);
  });
  await knex.schema.createTable('ip_addresses', (t) => {
    t.increments('id');
    t.integer('droplet_id').unsigned().nullable().references('droplets.id');
    t.integer('region_id').unsigned().notNullable().references('regions.id');
    t.string('address', 45).notNullable().unique();
    t.string('type', 16).notNullable();
    t.index(['droplet_id']);
  });
  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('id');
    t.integer('droplet_id').unsigned().nullable().references('droplets.id');
    t.integer('customer_id').unsigned().nullable().references('customers.id');
    t.integer('region_id').unsigned().notNullable().references('regions.id');
    t.enu('type', [...EVENT_TYPES]).notNullable();
    // NULL until a scheduler places it: the 2012 protocol from the seed.
    t.integer('server_id').unsigned().nullable().references('servers.id');
    t.enu('status', [...EVENT_STATUSES]).notNullable().defaultTo('pending');
    t.text('args').nullable();
    t.string('message', 255).nullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    // When the event became deliverable to its hypervisor (placed, or created with a server).
    t.specificType('available_at', 'DATETIME(3)').nullable();
    t.specificType('started_at', 'DATETIME(3)').nullable();
    t.specificType('finished_at', 'DATETIME(3)').nullable();
    t.index(['server_id', 'status']);
    t.index(['status', 'type', 'server_id']);
    t.index(['droplet_id']);
  });
  await knex.schema.createTable('event_executions', (t) => {
    t.bigIncrements('id');
    // Deliberately not unique: a second execution must be recorded so it can be counted.
    t.bigInteger('event_id').unsigned().notNullable();
    t.integer('server_id').unsigned().notNullable();
    t.string('source', 16).notNullable().defaultTo('god-query');
    t.specificType('received_at', 'DATETIME(3)').notNullable();
    t.specificType('finished_at', 'DATETIME(3)').notNullable();
    t.index(['event_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'event_executions',
    'events',
    'ip_addresses',
    'droplet_features',
    'droplet_ssh_keys',
    'droplets',
    'servers',
    'ssh_keys',
    'customers',
    'kernels',
    'images',
    'sizes',
    'regions',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
