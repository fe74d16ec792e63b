import type { FilterContext, FilterId, FilterPlugin, HostCandidate, SizeSpec } from './filters.ts';
import { JudgedHosts } from './judged-hosts.ts';
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
 * Pure: the caller supplies the view, as candidates or already judged by
 * the size-independent filters (JudgedHosts, for a round of events against
 * the same hosts). Outcome: `place` when any host passed; else `wait` when
 * a host was rejected only by a waitable filter (busy with a create/restore,
 * metrics missing or stale); else `fail`.
 *
 * @example
 *   const r = rankHosts(hosts, { region_id: 1, size }, { filters: FILTERS, policy: 'v1-compatible', overcommit: 4, maxStalenessMs: 10_000 });
 *   r.ranked[0]?.host.name; // the chosen host
 */
export function rankHosts(hosts: Iterable<HostCandidate> | JudgedHosts, request: RankRequest, options: RankOptions): RankResult {
  const judged = hosts instanceof JudgedHosts ? (hosts.judgedFor(options) ? hosts : new JudgedHosts(hosts.hosts, options)) : new JudgedHosts([...hosts], options);
  const { filters } = options;
  const { sizeFilters, firstReject } = judged;
  const list = judged.hosts;
  const scorer = SCORERS[options.policy];
  const rejectedBy = new Uint32Array(filters.length);
  const top = options.top ?? Infinity;
  const clean = new Best(top, scorer.compare);
  // Enough of them to fill the ranking whatever number of clean hosts ends up in it.
  const fallback = new Best(top, scorer.compareFallback);
  const verdicts: HostVerdict[] | undefined = options.verdicts ? [] : undefined;
  // One context for the whole call, pointed at each host in turn: filters only read it while they run.
  let context: FilterContext | undefined;
  let total = 0;
  let userHosts = 0;
  let waitable = false;
  for (let i = 0; i < list.length; i++) {
    const host = list[i]!;
    if (host.region_id !== request.region_id) continue;
    total++;
    let hit = firstReject[i]!;
    for (const k of sizeFilters) {
      if (k >= hit) break;
      if (filters[k]!.test((context = pointAt(context, host, request.size, options)))) {
        hit = k;
        break;
      }
    }
    if (hit < filters.length) {
      const f = filters[hit]!;
      rejectedBy[hit]!++;
      if (f.waitable) waitable = true;
      verdicts?.push({ server_id: host.id, name: host.name, passed: false, filter: f.id, message: f.message((context = pointAt(context, host, request.size, options))) });
      continue;
    }
    const score = scorer.score(host, request.size);
    const userHas = (options.userDroplets?.get(host.id) ?? 0) > 0;
    if (userHas) {
      userHosts++;
      fallback.offer(host, score);
    } else {
      clean.offer(host, score);
    }
    verdicts?.push({ server_id: host.id, name: host.name, passed: true, user_has_droplets: userHas, score });
  }
  const ranked: RankedHost[] = [];
  for (const s of clean.sorted()) ranked.push({ host: s.host, score: s.score, tier: 0 });
  for (const s of fallback.sorted()) {
    if (ranked.length >= top) break;
    ranked.push({ host: s.host, score: s.score, tier: 1 });
  }
  const rejected: Partial<Record<FilterId, number>> = {};
  for (let k = 0; k < filters.length; k++) if (rejectedBy[k]! > 0) rejected[filters[k]!.id] = rejectedBy[k]!;
  const outcome: RankOutcome = ranked.length > 0 ? 'place' : waitable ? 'wait' : 'fail';
  return {
    outcome,
    policy: options.policy,
    ranked,
    rejected,
    hosts_total: total,
    hosts_available: ranked.length,
    user_hosts: userHosts,
    ...(verdicts ? { verdicts } : {}),
  };
}

/** The filter context for `host`: `context` re-pointed (a module function, not a closure: it runs per host). */
function pointAt(context: FilterContext | undefined, host: HostCandidate, size: SizeSpec, options: RankOptions): FilterContext {
  if (!context) return { host, size, overage: host.cpus * options.overcommit, maxStalenessMs: options.maxStalenessMs };
  context.host = host;
  context.overage = host.cpus * options.overcommit;
  return context;
}

/**
 * The `k` best hosts offered, in order: a bounded insertion (O(n·k)) that allocates only for the hosts
 * that get in; with no bound, everything then one sort.
 */
class Best {
  private readonly out: ScoredHost[] = [];
  // Compared against the current worst before anything is allocated for the host.
  private probe: ScoredHost | undefined;

  constructor(
    private readonly k: number,
    private readonly compare: (a: ScoredHost, b: ScoredHost) => number,
  ) {}

  offer(host: HostCandidate, score: number): void {
    const { out, k, compare } = this;
    if (k <= 0) return;
    if (k === Infinity) {
      out.push({ host, score });
      return;
    }
    if (out.length === k) {
      const probe = (this.probe ??= { host, score });
      probe.host = host;
      probe.score = score;
      if (compare(probe, out[k - 1]!) >= 0) return;
    }
    const item = { host, score };
    let i = out.length < k ? out.length : k - 1;
    while (i > 0 && compare(item, out[i - 1]!) < 0) {
      out[i] = out[i - 1]!;
      i--;
    }
    out[i] = item;
  }

  sorted(): ScoredHost[] {
    return this.k === Infinity ? this.out.sort(this.compare) : this.out;
  }
}
