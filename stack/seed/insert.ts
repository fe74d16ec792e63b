import type { Knex } from 'knex';
import type { SeedData } from './generate.ts';
import { generateDropletContext } from './droplet-context.ts';

const CHUNK = 2000;

/**
 * Writes generated seed data in multi-row INSERTs inside one transaction,
 * so a seed is all or nothing. Expects empty tables (a fresh migration).
 *
 * @example
 *   await insertSeed(adminKnex, generateSeed({ hypervisors: 200, regions: 3 }));
 */
export async function insertSeed(db: Knex, data: SeedData, onProgress?: (table: string, rows: number) => void): Promise<void> {
  const context = generateDropletContext(data.droplets, data.seed);
  await db.transaction(async (trx) => {
    const tables: Array<[string, object[]]> = [
      ['regions', data.regions],
      ['sizes', data.sizes],
      ['images', data.images],
      ['kernels', data.kernels],
      ['customers', data.customers],
      ['ssh_keys', data.sshKeys],
      ['servers', data.servers],
      ['droplets', data.droplets],
      ['droplet_ssh_keys', data.dropletSshKeys],
      ['ip_addresses', data.ipAddresses],
      ['volumes', context.volumes],
      ['backups', context.backups],
      ['snapshots', context.snapshots],
      ['tags', context.tags],
      ['droplet_tags', context.dropletTags],
      ['events', data.events.map((e) => ({ ...e, available_at: trx.raw('CURRENT_TIMESTAMP(3)') }))],
    ];
    for (const [table, rows] of tables) {
      for (let i = 0; i < rows.length; i += CHUNK) {
        await trx(table).insert(rows.slice(i, i + CHUNK));
      }
      onProgress?.(table, rows.length);
    }
  });
}
