import type { Knex } from 'knex';
import { invalidOption } from '../lib/errors.ts';
import { loadCatalog, type Catalog } from './catalog.ts';
import type { HostCandidate } from './filters.ts';
import type { HostMetrics } from '../lib/metrics/host-metrics.ts';
import type { HostRewind } from './rewind.ts';
import { HostStore, type HostReserved, type InflightEvent } from './state.ts';

/**
 * A replica's inventory: the catalogue (regions, sizes), the regions it
 * schedules, and the host store (generations, ledgers, busy lists), loaded
 * on first use and reloaded every `refreshMs`; and the hosts as filters see
 * them (store + scraped metrics).
 *
 * @example
 *   const inv = createInventory({ db, regions: ['nyc1'], refreshMs: 30_000, reserved, metrics: () => scraper.hosts() });
 *   const store = await inv.ensureLoaded();
 *   const hosts = inv.candidatesFor(store, inv.scope()[0]!, Date.now());
 */
export function createInventory(deps: {
  db: Knex;
  /** Regions the replica schedules, by id or slug (undefined: all). */
  regions: Array<number | string> | undefined;
  refreshMs: number;
  reserved: HostReserved;
  /** The latest scraped metrics, by hypervisor name. */
  metrics: () => ReadonlyMap<string, HostMetrics>;
}) {
  let catalog: Catalog | undefined;
  let store: HostStore | undefined;
  let regionIds: number[] | undefined;
  let loadedAt = 0;
  // Started at event-writes full: the busy lists come from the feed, never from `events`.
  let externalBusy = false;

  async function ensureLoaded(): Promise<HostStore> {
    if (!catalog) {
      const cat = (catalog = await loadCatalog(deps.db));
      if (deps.regions) {
        regionIds = deps.regions.map((r) => {
          const id = typeof r === 'number' ? (cat.regionById.has(r) ? r : undefined) : cat.regionBySlug.get(r);
          if (id === undefined) throw invalidOption('regions', r, `a region id or slug; known: ${cat.regions.map((x) => x.slug).join(', ')}`);
          return id;
        });
      }
    }
    if (!store || Date.now() - loadedAt > deps.refreshMs) {
      const next = store ?? new HostStore(deps.db, regionIds);
      if (!store && externalBusy) next.useInflightSource('external');
      await next.loadAll();
      store = next;
      loadedAt = Date.now();
    }
    return store;
  }

  return {
    ensureLoaded,
    /** Before the first load: the busy lists will come from Harpoon's stream (event-writes full at start). */
    startWithExternalBusy(on: boolean): void {
      externalBusy = on;
    },
    /** The catalogue; only after ensureLoaded(). */
    catalog: (): Catalog => catalog!,
    /** The host store; only after ensureLoaded(). */
    store: (): HostStore => store!,
    loadedStore: (): HostStore | undefined => store,
    /** The regions this replica was configured with (undefined: all). */
    regionIds: (): number[] | undefined => regionIds,
    /** Every region id the replica schedules; only after ensureLoaded(). */
    scope: (): number[] => regionIds ?? catalog!.regions.map((r) => r.id),
    regionSlug: (id: number): string | undefined => catalog?.regionById.get(id),
    /**
     * The region's hosts as filters see them now; `rewindOf` (shadow) sets each back to an earlier
     * moment; `busy` (explain) replaces the store's busy lists with ones read apart (HostStore.readBusy).
     */
    candidatesFor(s: HostStore, regionId: number, now: number, rewindOf?: (serverId: number) => HostRewind, busy?: ReadonlyMap<number, readonly InflightEvent[]>): HostCandidate[] {
      const hosts = deps.metrics();
      return s.hostsInRegion(regionId).map((h) => s.candidate(h, hosts.get(h.name), now, deps.reserved, rewindOf?.(h.id), busy ? (busy.get(h.id) ?? []) : undefined));
    },
    /** Hosts by the age of their metrics (for the scheduler_v2_hosts gauge). */
    hostCounts(maxStalenessMs: number): Record<'fresh' | 'stale' | 'missing', number> {
      const counts = { fresh: 0, stale: 0, missing: 0 };
      if (!store) return counts;
      const hosts = deps.metrics();
      const now = Date.now();
      for (const h of store.byId.values()) {
        const m = hosts.get(h.name);
        if (!m) counts.missing++;
        else if (now - m.last_report_ms > maxStalenessMs) counts.stale++;
        else counts.fresh++;
      }
      return counts;
    },
  };
}

export type Inventory = ReturnType<typeof createInventory>;
