import type { Knex } from 'knex';
import { StranglerError } from '../lib/errors.ts';
import { loadUserDroplets } from './claims.ts';
import { schedulerError } from './errors.ts';
import { summarize } from './explain.ts';
import type { SizeSpec } from './filters.ts';
import type { ExplainAccess, ExplainInput, ExplainResult } from './http.ts';
import type { Inventory } from './inventory.ts';
import type { PolicyId } from './scorers.ts';
import { rankHosts, type RankOptions } from './rank.ts';
import type { HostScraper } from './scraper.ts';
import type { HostStore } from './state.ts';

/**
 * POST /explain: the filter/score breakdown for a hypothetical request,
 * against the replica's current view (fresh metrics, busy lists read for
 * the request's region); writes nothing and changes nothing the placement
 * loop holds, so it runs beside placement, not in its queue. Without
 * `access.placements` a `customer_id` does not rank the customer's own
 * hosts last: the answer would tell where that customer's droplets are.
 *
 * @example
 *   const explain = createExplainer({ db, inventory, loadStore, scraper, scrapeIntervalMs: 1000, maxStalenessMs: 10_000, policy, rankOptions });
 *   (await explain({ region: 'nyc1', size: '2gb' }, { placements: false })).summary; // "placed on nyc1-hv0002 (…)"
 */
export function createExplainer(deps: {
  db: Knex;
  inventory: Inventory;
  /** The first load of the host store (through the placement queue); later explains use the loaded one as it is. */
  loadStore(): Promise<HostStore>;
  scraper: HostScraper;
  scrapeIntervalMs: number;
  maxStalenessMs: number;
  policy: PolicyId;
  rankOptions(overrides?: Partial<RankOptions>): RankOptions;
}): (input: ExplainInput, access: ExplainAccess) => Promise<ExplainResult> {
  const { inventory } = deps;
  return async (input, access) => {
    const s =
      inventory.loadedStore() ??
      (await deps.loadStore().catch((err: unknown) => {
        if (err instanceof StranglerError) throw err;
        throw schedulerError('SCHEDULER_ERR_NOT_READY', 'the host inventory could not be loaded from the database; retry shortly', err);
      }));
    const cat = inventory.catalog();
    const regionIds = inventory.regionIds();
    const regionId = typeof input.region === 'number' ? (cat.regionById.has(input.region) ? input.region : undefined) : cat.regionBySlug.get(input.region);
    if (regionId === undefined) {
      throw schedulerError('SCHEDULER_ERR_UNKNOWN_REGION', `unknown region ${JSON.stringify(input.region).slice(0, 80)}; known: ${cat.regions.map((r) => r.slug).join(', ')}`);
    }
    if (regionIds && !regionIds.includes(regionId)) {
      throw schedulerError('SCHEDULER_ERR_UNKNOWN_REGION', `region ${cat.regionById.get(regionId)} is not scheduled by this replica; it schedules ${regionIds.map((r) => cat.regionById.get(r)).join(', ')}`);
    }
    let size: SizeSpec | undefined;
    if (typeof input.size === 'string') {
      size = cat.sizeBySlug.get(input.size);
      if (!size) throw schedulerError('SCHEDULER_ERR_UNKNOWN_SIZE', `unknown size ${JSON.stringify(input.size).slice(0, 80)}; known: ${cat.sizes.map((z) => z.slug).join(', ')}`);
    } else {
      size = input.size;
    }
    await deps.scraper.ensureFresh(deps.scrapeIntervalMs);
    const busy = await s.readBusy(regionId);
    const customer = input.customer_id !== undefined && access.placements ? input.customer_id : undefined;
    const userDroplets = customer === undefined ? undefined : (await loadUserDroplets(deps.db, [customer])).get(customer);
    const rank = rankHosts(
      inventory.candidatesFor(s, regionId, Date.now(), undefined, busy),
      { customer_id: customer, region_id: regionId, size },
      deps.rankOptions({ policy: input.policy ?? deps.policy, verdicts: true, ...(userDroplets ? { userDroplets } : {}) }),
    );
    const chosen = rank.ranked[0];
    return {
      outcome: rank.outcome,
      policy: rank.policy,
      region: { id: regionId, slug: cat.regionById.get(regionId)! },
      size,
      chosen: chosen ? { server_id: chosen.host.id, name: chosen.host.name, score: chosen.score, fallback: chosen.tier === 1 } : null,
      summary: summarize(rank, chosen ? { chosen } : {}),
      hosts_total: rank.hosts_total,
      hosts_available: rank.hosts_available,
      rejected: rank.rejected,
      ranked: rank.ranked.slice(0, input.top ?? 10).map((r) => ({ server_id: r.host.id, name: r.host.name, score: r.score, fallback: r.tier === 1 })),
      ...(input.hosts ? { hosts: rank.verdicts ?? [] } : {}),
      max_staleness_ms: deps.maxStalenessMs,
      ...(input.customer_id === undefined ? {} : { customer_placements: access.placements ? ('shown' as const) : ('hidden' as const) }),
    };
  };
}
