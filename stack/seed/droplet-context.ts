import { createRandom } from './prng.ts';

/** The rows of the 2016 droplet context (migrations/009_droplet_context.ts) for a seeded world. */
export interface DropletContextRows {
  volumes: Array<{ droplet_id: number; region_id: number; name: string; size_gb: number }>;
  backups: Array<{ droplet_id: number; status: string; size_gb: number }>;
  snapshots: Array<{ droplet_id: number; name: string }>;
  tags: Array<{ id: number; customer_id: number; name: string }>;
  dropletTags: Array<{ droplet_id: number; tag_id: number }>;
}

const TAG_NAMES = ['web', 'db', 'staging', 'production', 'k8s-node'] as const;

/**
 * Volumes, backups, snapshots and tags for seeded droplets: what the 2016 god
 * query joins (legacy/dobe/god-query-2016.ts), in proportions that make its
 * subqueries find rows. A PRNG stream of its own, so adding this context
 * leaves every other seeded row as it was for the same seed number.
 *
 * @example
 *   const context = generateDropletContext(seed.droplets, 1);
 */
export function generateDropletContext(
  droplets: ReadonlyArray<{ id: number; customer_id: number; region_id: number }>,
  seed: number,
): DropletContextRows {
  const rand = createRandom((seed ^ 0x2016_0c7) >>> 0);
  const rows: DropletContextRows = { volumes: [], backups: [], snapshots: [], tags: [], dropletTags: [] };
  const tagIds = new Map<string, number>();
  const tagOf = (customerId: number, name: string): number => {
    const key = `${customerId}/${name}`;
    let id = tagIds.get(key);
    if (id === undefined) {
      id = rows.tags.length + 1;
      tagIds.set(key, id);
      rows.tags.push({ id, customer_id: customerId, name });
    }
    return id;
  };
  for (const d of droplets) {
    if (rand.chance(0.15)) rows.volumes.push({ droplet_id: d.id, region_id: d.region_id, name: `volume-${d.id}`, size_gb: rand.pick([10, 50, 100, 500]) });
    if (rand.chance(0.3)) {
      for (let k = rand.int(1, 4); k > 0; k--) rows.backups.push({ droplet_id: d.id, status: k === 1 && rand.chance(0.2) ? 'pending' : 'done', size_gb: rand.int(1, 40) });
    }
    if (rand.chance(0.1)) rows.snapshots.push({ droplet_id: d.id, name: `snapshot-${d.id}` });
    if (rand.chance(0.4)) rows.dropletTags.push({ droplet_id: d.id, tag_id: tagOf(d.customer_id, rand.pick(TAG_NAMES)) });
  }
  return rows;
}
