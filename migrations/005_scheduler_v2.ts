import type { Knex } from 'knex';

/**
 * Scheduler V2's state (see scheduler/README.md):
 *
 * - `servers.generation`: bumped by every V2 placement on the host. A
 *   placement is a compare-and-swap on it (`… WHERE id = ? AND generation = ?`)
 *   so two replicas holding the same view of a host cannot both commit.
 * - `events.claimed_by` / `events.claim_expires_at`: a replica's lease on an
 *   unscheduled create event, taken with `FOR UPDATE SKIP LOCKED`. An expired
 *   lease (the replica died) makes the event claimable again. After placement
 *   `claimed_by` stays as the record of which replica placed it.
 * - `placement_decisions`: one row per decision (placed, failed, or the first
 *   wait of an event), with the explanation text.
 * - `scheduler_replicas`: heartbeats of live replicas, from which each
 *   derives the regions it prefers to claim from.
 *
 * Reserved capacity is not a counter: it is the sum of the sizes of the
 * host's non-archived, non-error droplets (a droplet has its `server_id` from
 * the moment it is placed), the same sum lib/invariants.ts checks. A counter
 * would drift, because agents finishing a destroy and Scheduler V1 placing in
 * regions V2 does not own never touch it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('servers', (t) => {
    t.bigInteger('generation').unsigned().notNullable().defaultTo(0);
  });
  await knex.schema.alterTable('events', (t) => {
    t.string('claimed_by', 64).nullable();
    // No index on the lease: claims walk the legacy (status, type, server_id) index, whose implicit id
    // suffix gives ORDER BY id without a filesort, so FOR UPDATE SKIP LOCKED … LIMIT n locks only the rows
    // it returns. An index with claim_expires_at would sort, lock every candidate, and starve other replicas.
    t.specificType('claim_expires_at', 'DATETIME(3)').nullable();
  });
  await knex.schema.createTable('placement_decisions', (t) => {
    t.bigIncrements('id');
    t.bigInteger('event_id').unsigned().notNullable();
    t.string('replica', 64).notNullable();
    t.enu('outcome', ['placed', 'failed', 'waiting']).notNullable();
    t.integer('server_id').unsigned().nullable();
    t.string('policy', 32).notNullable();
    t.double('score').nullable();
    t.integer('hosts_total').notNullable();
    t.integer('hosts_available').notNullable();
    t.integer('attempts').notNullable().defaultTo(1);
    t.integer('conflicts').notNullable().defaultTo(0);
    t.string('summary', 1024).notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['event_id']);
  });
  // Live replicas (heartbeats). Each active replica prefers a share of the regions (region k goes to the
  // k-th live replica, modulo their number) so replicas rarely race for the same hosts; a replica whose
  // heartbeat stops drops out within seconds and its regions pass to the others.
  await knex.schema.createTable('scheduler_replicas', (t) => {
    t.string('replica', 64).primary();
    t.enu('mode', ['active', 'shadow']).notNullable();
    t.string('preferred_regions', 1024).notNullable().defaultTo('');
    t.specificType('started_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.specificType('heartbeat_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('scheduler_replicas');
  await knex.schema.dropTableIfExists('placement_decisions');
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('claimed_by');
    t.dropColumn('claim_expires_at');
  });
  await knex.schema.alterTable('servers', (t) => {
    t.dropColumn('generation');
  });
}
