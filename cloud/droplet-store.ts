import type { Knex } from 'knex';
import type { DropletRecord } from '../contracts/droplet-api.ts';

/**
 * Reads of a customer's droplets. Every query takes the customer id, so a
 * handler cannot forget the scoping that keeps customers apart; archived
 * droplets are gone as far as the API is concerned.
 */

type DropletRow = Omit<DropletRecord, 'features' | 'ips'>;

function visibleDroplets(db: Knex, customerId: number) {
  return db('droplets as d').where('d.customer_id', customerId).whereNot('d.status', 'archived');
}

const COLUMNS = [
  'd.id',
  'd.name',
  'd.status',
  'd.locked',
  'd.created_at',
  'd.server_id',
  'd.region_id',
  'r.slug as region_slug',
  'r.name as region_name',
  's.slug as size_slug',
  's.memory',
  's.vcpus',
  's.disk',
  'i.id as image_id',
  'i.slug as image_slug',
  'i.name as image_name',
  'i.distribution as image_distribution',
];

function withCatalog(db: Knex, customerId: number) {
  return visibleDroplets(db, customerId)
    .join('regions as r', 'r.id', 'd.region_id')
    .join('sizes as s', 's.id', 'd.size_id')
    .join('images as i', 'i.id', 'd.image_id')
    .select(COLUMNS);
}

/** The rows of one page, oldest first, with their features and addresses attached. */
export async function listDroplets(db: Knex, customerId: number, page: { limit: number; offset: number }): Promise<DropletRecord[]> {
  const rows = (await withCatalog(db, customerId).orderBy('d.id').limit(page.limit).offset(page.offset)) as DropletRow[];
  return attachDetails(db, rows);
}

export async function getDroplet(db: Knex, customerId: number, id: number): Promise<DropletRecord | undefined> {
  const rows = (await withCatalog(db, customerId).where('d.id', id)) as DropletRow[];
  const [droplet] = await attachDetails(db, rows);
  return droplet;
}

export async function countDroplets(db: Knex, customerId: number): Promise<number> {
  const [row] = (await visibleDroplets(db, customerId).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(row?.n ?? 0);
}

async function attachDetails(db: Knex, rows: DropletRow[]): Promise<DropletRecord[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [features, ips] = await Promise.all([
    db('droplet_features').whereIn('droplet_id', ids).orderBy('feature').select('droplet_id', 'feature') as Promise<
      Array<{ droplet_id: number; feature: string }>
    >,
    db('ip_addresses').whereIn('droplet_id', ids).orderBy('id').select('droplet_id', 'address', 'type') as Promise<
      Array<{ droplet_id: number; address: string; type: string }>
    >,
  ]);
  return rows.map((r) => ({
    ...r,
    features: features.filter((f) => f.droplet_id === r.id).map((f) => f.feature),
    ips: ips.filter((ip) => ip.droplet_id === r.id).map(({ address, type }) => ({ address, type })),
  }));
}
