import type { Pool } from 'mysql2/promise';
import { harpoonError } from './errors.ts';

/**
 * Regions and sizes, held in memory: creates are checked against them
 * before anything is queued, and every event served carries its region's
 * slug without a join. An unknown slug or id reloads the tables, at most
 * once per `reloadMs`, so a region added at run time is found and a flood
 * of bad input costs no queries.
 */
export interface Catalog {
  load(): Promise<void>;
  regionId(slug: string): Promise<number>;
  /** The region's id when it is already in memory (no promise: the per-item path of a create). */
  knownRegionId(slug: string): number | undefined;
  /** Whether the size is already in memory. */
  knowsSize(slug: string): boolean;
  regionSlug(id: number): string;
  checkSize(slug: string): Promise<void>;
}

export function createCatalog(pool: Pool, options: { reloadMs?: number; onQuery?: (name: string) => void } = {}): Catalog {
  const reloadMs = options.reloadMs ?? 5000;
  let regions = new Map<string, number>();
  let slugs = new Map<number, string>();
  let sizes = new Set<string>();
  let loadedAt = 0;
  let loading: Promise<void> | undefined;

  function load(): Promise<void> {
    loading ??= (async () => {
      try {
        options.onQuery?.('catalog');
        const [r] = (await pool.query('SELECT id, slug FROM regions')) as unknown as [Array<{ id: number; slug: string }>];
        const [s] = (await pool.query('SELECT slug FROM sizes')) as unknown as [Array<{ slug: string }>];
        regions = new Map(r.map((x) => [x.slug, x.id]));
        slugs = new Map(r.map((x) => [x.id, x.slug]));
        sizes = new Set(s.map((x) => x.slug));
        loadedAt = Date.now();
      } finally {
        loading = undefined;
      }
    })();
    return loading;
  }

  async function fresh(known: () => boolean): Promise<void> {
    if (!known() && Date.now() - loadedAt >= reloadMs) await load();
  }

  return {
    load,
    async regionId(slug) {
      await fresh(() => regions.has(slug));
      const id = regions.get(slug);
      if (id === undefined) {
        throw harpoonError('HARPOON_ERR_UNKNOWN_REGION', `region ${JSON.stringify(slug)} does not exist; use one of ${[...regions.keys()].slice(0, 50).join(', ')}`);
      }
      return id;
    },
    knownRegionId: (slug) => regions.get(slug),
    knowsSize: (slug) => sizes.has(slug),
    regionSlug(id) {
      // Rows name regions by foreign key, so an id we do not know was added after our load; the next reload finds it.
      const slug = slugs.get(id);
      if (slug === undefined && Date.now() - loadedAt >= reloadMs) void load().catch(() => {});
      return slug ?? `region-${id}`;
    },
    async checkSize(slug) {
      await fresh(() => sizes.has(slug));
      if (!sizes.has(slug)) throw harpoonError('HARPOON_ERR_UNKNOWN_SIZE', `size ${JSON.stringify(slug)} does not exist; use one of ${[...sizes].slice(0, 50).join(', ')}`);
    },
  };
}
