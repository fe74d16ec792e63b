import type { Knex } from 'knex';
import type { SizeSpec } from './filters.ts';

export interface Catalog {
  regions: Array<{ id: number; slug: string }>;
  sizes: SizeSpec[];
  regionBySlug: Map<string, number>;
  regionById: Map<number, string>;
  sizeBySlug: Map<string, SizeSpec>;
}

/** Regions and sizes: read once at start (they change with a deploy, not at run time). */
export async function loadCatalog(db: Knex): Promise<Catalog> {
  const regions = ((await db('regions').orderBy('id').select('id', 'slug')) as Array<{ id: number; slug: string }>).map((r) => ({
    id: r.id,
    slug: r.slug,
  }));
  const sizes = ((await db('sizes').orderBy('id').select('slug', 'memory', 'vcpus', 'disk')) as SizeSpec[]).map((s) => ({
    slug: s.slug,
    memory: Number(s.memory),
    vcpus: Number(s.vcpus),
    disk: Number(s.disk),
  }));
  return {
    regions,
    sizes,
    regionBySlug: new Map(regions.map((r) => [r.slug, r.id])),
    regionById: new Map(regions.map((r) => [r.id, r.slug])),
    sizeBySlug: new Map(sizes.map((s) => [s.slug, s])),
  };
}
