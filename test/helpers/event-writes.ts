import type { Knex } from 'knex';
import type { RoutingMode } from '../../lib/cutover/types.ts';

/** Sets a cutover feature's row as the controller would (mode, percent, version bumped). */
export async function setFeature(db: Knex, feature: string, mode: RoutingMode, percent = mode === 'full' ? 100 : 0): Promise<void> {
  await db.raw(
    `INSERT INTO cutover_features (feature, step, step_name, mode, percent) VALUES (?, 1, ?, ?, ?)
     ON DUPLICATE KEY UPDATE mode = VALUES(mode), percent = VALUES(percent), step_name = VALUES(step_name), version = version + 1`,
    [feature, mode, mode, percent],
  );
}

/** Per droplet: how many events it has, and the outbox rows still waiting for Harpoon. */
export async function eventsPerDroplet(db: Knex, dropletIds: number[]): Promise<{ counts: Map<number, number>; outbox: number }> {
  const rows = (await db('events').whereIn('droplet_id', dropletIds).groupBy('droplet_id').select('droplet_id').count({ n: '*' })) as Array<{ droplet_id: number; n: number | string }>;
  const counts = new Map(dropletIds.map((id) => [id, 0]));
  for (const r of rows) counts.set(r.droplet_id, Number(r.n));
  const [o] = (await db('event_outbox').count({ n: '*' })) as Array<{ n: number | string }>;
  return { counts, outbox: Number(o?.n ?? 0) };
}

/** A create body for the seeded catalogue. */
export function createBody(name: string, seed: { regions: Array<{ slug: string }>; sizes: Array<{ slug: string }>; images: Array<{ slug: string }> }) {
  return { name, region: seed.regions[0]!.slug, size: seed.sizes[0]!.slug, image: seed.images[0]!.slug };
}
