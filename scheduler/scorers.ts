import type { HostCandidate, SizeSpec } from './filters.ts';

export type PolicyId = 'v1-compatible' | 'spread' | 'bin-pack';

/**
 * A scoring policy: how the hosts that passed every filter are ordered.
 * Higher scores come first; `compare` breaks ties so the order never
 * depends on input order. Hosts already holding the customer's droplets
 * always come after the others (V1's soft anti-affinity, rule 14), and are
 * ordered by `compareFallback`.
 */
export interface ScorerPlugin {
  id: PolicyId;
  describe: string;
  score(host: HostCandidate, size: SizeSpec): number;
  compare(a: ScoredHost, b: ScoredHost): number;
  compareFallback(a: ScoredHost, b: ScoredHost): number;
}

export interface ScoredHost {
  host: HostCandidate;
  score: number;
}

/** Fraction of allocatable memory and disk still free once the droplet is in, the lower of the two. */
function freeAfter(host: HostCandidate, size: SizeSpec): number {
  const mem = host.allocatable_memory > 0 ? (host.memfree - size.memory) / host.allocatable_memory : 0;
  const disk = host.allocatable_disk > 0 ? (host.diskfree_actual - size.disk) / host.allocatable_disk : 0;
  return Math.min(mem, disk);
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const byScoreThenId = (a: ScoredHost, b: ScoredHost) => b.score - a.score || a.host.vmcount - b.host.vmcount || a.host.id - b.host.id;

export const SCORERS: Record<PolicyId, ScorerPlugin> = {
  'v1-compatible': {
    id: 'v1-compatible',
    describe: "V1's final choice: most memfree, then fewer VMs, then lowest id; fallback to the customer's highest-id host",
    score: (host) => host.memfree,
    // Exactly rank.ts compareCandidates.
    compare: (a, b) => b.host.memfree - a.host.memfree || a.host.vmcount - b.host.vmcount || a.host.id - b.host.id,
    // The Perl kept the highest server id among hosts holding the customer's droplets.
    compareFallback: (a, b) => b.host.id - a.host.id,
  },
  spread: {
    id: 'spread',
    describe: 'least loaded first: score = 100 × the lower of free memory and free disk fractions after placing',
    score: (host, size) => round2(100 * freeAfter(host, size)),
    compare: byScoreThenId,
    compareFallback: byScoreThenId,
  },
  'bin-pack': {
    id: 'bin-pack',
    describe: 'fullest host that fits first: score = 100 × (1 − the lower of free memory and free disk fractions after placing)',
    score: (host, size) => round2(100 * (1 - freeAfter(host, size))),
    compare: byScoreThenId,
    compareFallback: byScoreThenId,
  },
};

export const POLICY_IDS = Object.keys(SCORERS) as PolicyId[];

export function isPolicy(value: unknown): value is PolicyId {
  return typeof value === 'string' && Object.hasOwn(SCORERS, value);
}
