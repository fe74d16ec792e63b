import type { Knex } from 'knex';
import { StranglerError } from '../lib/errors.ts';
import { loadUserDroplets } from './claims.ts';
import { schedulerError } from './errors.ts';
import { summarize } from './explain.ts';
import type { SizeSpec } from './filters.ts';
import type { ExplainInput, ExplainResult } from './http.ts';
import type { Inventory } from './inventory.ts';
import type { PolicyId } from './scorers.ts';
import { rankHosts, type RankOptions } from './rank.ts';
import type { HostScraper } from './scraper.ts';

/**
 * POST /explain: the filter/score breakdown for a hypothetical request,
 * against the replica's current view (fresh metrics and busy lists); writes
 * nothing. The caller serialises it with the replica's batches.
 *
 * @example
 *   const explain = createExplainer({ db, inventory, scraper, scrapeIntervalMs: 1000, maxStalenessMs: 10_000, policy, rankOptions });
 *   (await explain({ region: 'nyc1', size: '2gb' })).summary; // "placed on nyc1-hv0002 (…)"
 */
export function createExplainer(deps: {
  db: Knex;
  inventory: Inventory;
  scraper: HostScraper;
  scrapeIntervalMs: number;
  maxStalenessMs: number;
  policy: PolicyId;
  rankOptions(overrides?: Partial<RankOptions>): RankOptions;
}): (input: ExplainInput) => Promise<ExplainResult> {
  const { inventory } = deps;
  return async (input) => {
    const s = await inventory.ensureLoaded().catch((err: unknown) => {
      if (err instanceof StranglerError) throw err;
      throw schedulerError('SCHEDULER_ERR_NOT_READY', 'the host inventory could not be loaded from the database; retry shortly', err);
    });
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
    await s.refreshInflight();
    const userDroplets = input.customer_id === undefined ? undefined : (await loadUserDroplets(deps.db, [input.customer_id])).get(input.customer_id);
    const rank = rankHosts(
      inventory.candidatesFor(s, regionId, Date.now()),
      { customer_id: input.customer_id, region_id: regionId, size },
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
    };
  };
}
