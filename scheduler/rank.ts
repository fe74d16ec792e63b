import type { FilterContext, FilterId, FilterPlugin, HostCandidate, SizeSpec } from './filters.ts';
import { SCORERS, type PolicyId, type ScoredHost } from './scorers.ts';

export interface RankRequest {
  event_id?: number;
  customer_id?: number;
  region_id: number;
  size: SizeSpec;
}

export interface RankOptions {
  filters: readonly FilterPlugin[];
  policy: PolicyId;
  /** vCPU overcommit: V1's `$overage = cpus * overcommit`. */
  overcommit: number;
  maxStalenessMs: number;
  /** The customer's droplet count by server id (V1's `$droplet_counts_by_server`). */
  userDroplets?: ReadonlyMap<number, number>;
  /** Keep every host's verdict (for /explain); placement skips it to stay cheap. */
  verdicts?: boolean;
  /** Rank only the best `top` hosts (placement needs the choice and a few fallbacks); default all. */
  top?: number;
}

export interface RankedHost extends ScoredHost {
  /** 0: a clean host; 1: already holds this customer's droplets (V1's fallback). */
  tier: 0 | 1;
}

export interface HostVerdict {
  server_id: number;
  name: string;
  passed: boolean;
  filter?: FilterId;
  message?: string;
  user_has_droplets?: boolean;
  score?: number;
}

export type RankOutcome = 'place' | 'wait' | 'fail';

export interface RankResult {
  outcome: RankOutcome;
  policy: PolicyId;
  /** Hosts that passed every filter, best first (clean hosts, then the customer's hosts). */
  ranked: RankedHost[];
  /** Hosts rejected, by the first filter that rejected each. */
  rejected: Partial<Record<FilterId, number>>;
  hosts_total: number;
  hosts_available: number;
  /** Passing hosts that already hold the customer's droplets. */
  user_hosts: number;
  verdicts?: HostVerdict[];
}

/**
 * Filters then scores the hosts of the request's region for one droplet.
 * Pure: the caller supplies the view. Outcome: `place` when any host
 * passed; else `wait` when a host was rejected only by a waitable filter
 * (busy with a create/restore, metrics missing or stale); else `fail`.
 *
 * @example
 *   const r = rankHosts(hosts, { region_id: 1, size }, { filters: FILTERS, policy: 'v1-compatible', overcommit: 4, maxStalenessMs: 10_000 });
 *   r.ranked[0]?.host.name; // the chosen host
 */
export function rankHosts(hosts: Iterable<HostCandidate>, request: RankRequest, options: RankOptions): RankResult {
  const scorer = SCORERS[options.policy];
  const rejected: Partial<Record<FilterId, number>> = {};
  const clean: ScoredHost[] = [];
  const fallback: ScoredHost[] = [];
  const verdicts: HostVerdict[] | undefined = options.verdicts ? [] : undefined;
  let total = 0;
  let waitable = false;
  for (const host of hosts) {
    if (host.region_id !== request.region_id) continue;
    total++;
    const context: FilterContext = { host, size: request.size, overage: host.cpus * options.overcommit, maxStalenessMs: options.maxStalenessMs };
    let hit: FilterPlugin | undefined;
    for (const f of options.filters) {
      if (f.test(context)) {
        hit = f;
        break;
      }
    }
    if (hit) {
      rejected[hit.id] = (rejected[hit.id] ?? 0) + 1;
      if (hit.waitable) waitable = true;
      verdicts?.push({ server_id: host.id, name: host.name, passed: false, filter: hit.id, message: hit.message(context) });
      continue;
    }
    const scored = { host, score: scorer.score(host, request.size) };
    const userHas = (options.userDroplets?.get(host.id) ?? 0) > 0;
    (userHas ? fallback : clean).push(scored);
    verdicts?.push({ server_id: host.id, name: host.name, passed: true, user_has_droplets: userHas, score: scored.score });
  }
  const top = options.top ?? Infinity;
  const ranked: RankedHost[] = [];
  for (const s of best(clean, top, scorer.compare)) ranked.push({ host: s.host, score: s.score, tier: 0 });
  for (const s of best(fallback, top - ranked.length, scorer.compareFallback)) ranked.push({ host: s.host, score: s.score, tier: 1 });
  const outcome: RankOutcome = ranked.length > 0 ? 'place' : waitable ? 'wait' : 'fail';
  return {
    outcome,
    policy: options.policy,
    ranked,
    rejected,
    hosts_total: total,
    hosts_available: ranked.length,
    user_hosts: fallback.length,
    ...(verdicts ? { verdicts } : {}),
  };
}

/** The `k` best of `items` in order: a full sort when k covers them, else a bounded insertion (O(n·k)). */
function best(items: ScoredHost[], k: number, compare: (a: ScoredHost, b: ScoredHost) => number): ScoredHost[] {
  if (k <= 0) return [];
  if (k >= items.length) return items.sort(compare);
  const out: ScoredHost[] = [];
  for (const item of items) {
    if (out.length === k && compare(item, out[k - 1]!) >= 0) continue;
    let i = out.length < k ? out.length : k - 1;
    while (i > 0 && compare(item, out[i - 1]!) < 0) {
      out[i] = out[i - 1]!;
      i--;
    }
    out[i] = item;
  }
  return out;
}
