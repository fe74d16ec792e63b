import type { Knex } from 'knex';
import { EVENT_TYPES } from '../domain/events.ts';

/**
 * Cloud's transactional outbox (cloud/README.md, "event-writes"):
 * while a customer's event writes go through Harpoon, Cloud commits the
 * droplet rows and one `event_outbox` row in ONE transaction and never
 * touches `events`; a relay then creates the event in Harpoon with the key
 * `outbox-<id>` and deletes the row. A row therefore lives from the commit
 * until Harpoon holds its event: whatever crashes in between, the row is
 * still there to be relayed again, and the key makes the second relay return
 * the first event instead of creating another.
 *
 * `payload` is the Harpoon create request (JSON) without its key; the
 * droplet and type columns let the in-flight check ("is a destroy already
 * queued?") see events that are not in Harpoon yet without parsing it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_outbox', (t) => {
    t.bigIncrements('id');
    t.integer('droplet_id').unsigned().notNullable().references('droplets.id');
    t.integer('customer_id').unsigned().notNullable();
    t.enu('type', [...EVENT_TYPES]).notNullable();
    t.text('payload').notNullable();
    t.specificType('created_at', 'DATETIME(3)').notNullable().defaultTo(knex.raw('CURRENT_TIMESTAMP(3)'));
    t.index(['droplet_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('event_outbox');
}
