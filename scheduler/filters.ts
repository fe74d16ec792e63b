import type { V1BusyType } from '../domain/busy-types.ts';
import type { V1SkipRule } from '../domain/skip-rules.ts';
import { perlNum } from '../domain/skip-line.ts';

/**
 * A host as the filters and scorers see it: inventory from the `servers`
 * table (id, name, region, total memory/disk), live state from the scraped
 * metrics, adjusted for creates already placed but not yet reported by the
 * agent (see state.ts). Memory in MB, disk in GB.
 */
export interface HostCandidate {
  id: number;
  name: string;
  region_id: number;
  /** Total memory and disk (inventory). */
  memory: number;
  disk: number;
  /** Allocatable memory and disk: total minus what the hypervisor keeps for itself. */
  allocatable_memory: number;
  allocatable_disk: number;
  cpus: number;
  vmcount: number;
  memfree: number;
  diskfree_actual: number;
  error_count: number;
  state: string;
  /** Pending or running events of V1's busy types on this host: event id by type. */
  busy: Partial<Record<V1BusyType, number>>;
  /** Age of the host's last metrics report in ms; undefined when it has no (complete) metrics. */
  metrics_age_ms: number | undefined;
}

export interface SizeSpec {
  slug: string;
  memory: number;
  vcpus: number;
  disk: number;
}

export interface FilterContext {
  host: HostCandidate;
  size: SizeSpec;
  /** V1's `$overage`: cpus × overcommit. */
  overage: number;
  maxStalenessMs: number;
}

export type V2OnlyFilterId = 'metrics-missing' | 'metrics-stale';
export type FilterId = V2OnlyFilterId | V1SkipRule;

/**
 * A filter plugin. `test` returns true when the host is rejected. The first
 * filter that rejects a host is the one reported for it, as in V1's elsif chain.
 */
export interface FilterPlugin {
  id: FilterId;
  /** The words used in summaries: "12 too many errors". */
  reason: string;
  /**
   * When no host is left and one was rejected by a waitable filter, the
   * event waits instead of failing: the host is fine, just occupied (V1's
   * `$any_valid_busy_servers`) or the scheduler cannot see it right now.
   */
  waitable?: true;
  /**
   * The test reads the request's size. The others depend on the host alone, so a round judges them once
   * per host for all its events (judged-hosts.ts) instead of once per host per event.
   */
  usesSize?: true;
  test(c: FilterContext): boolean;
  /** The detailed line for one host; for V1's rules, V1's exact text after the SKIP prefix. */
  message(c: FilterContext): string;
}

const busyWith = (c: FilterContext, type: V1BusyType) => Object.hasOwn(c.host.busy, type);

/**
 * Every filter, in the order they run. The V2-only metrics filters come
 * first (nothing else can be judged without metrics); then V1's thirteen
 * SKIP rules from legacy/scheduler-v1/rank.ts, same order, same tests, same
 * messages (test/scheduler/filters.test.ts checks them against rankV1).
 */
export const FILTERS: readonly FilterPlugin[] = [
  {
    id: 'metrics-missing',
    reason: 'no metrics',
    waitable: true,
    test: (c) => c.host.metrics_age_ms === undefined,
    message: () => 'no complete host metrics scraped for this hypervisor',
  },
  {
    id: 'metrics-stale',
    reason: 'metrics stale',
    waitable: true,
    test: (c) => (c.host.metrics_age_ms ?? 0) > c.maxStalenessMs,
    message: (c) => `metrics stale: last report ${Math.round((c.host.metrics_age_ms ?? 0) / 1000)} s ago (limit ${Math.round(c.maxStalenessMs / 1000)} s)`,
  },
  {
    id: 'too-many-errors',
    reason: 'too many errors',
    test: (c) => c.host.error_count > 3,
    message: (c) => `TOO MANY ERRORS: errors=${perlNum(c.host.error_count)}`,
  },
  {
    id: 'state',
    reason: 'not in service',
    test: (c) => c.host.state !== '',
    message: (c) => `state = ${c.host.state}`,
  },
  {
    id: 'overage',
    reason: 'too many vms for their cpus',
    test: (c) => c.host.vmcount > c.overage,
    message: (c) =>
      `does not have enough cpus (overage=${perlNum(c.overage)}) (server cpus= ${perlNum(c.host.cpus)})` +
      ` (server vmcount=${perlNum(c.host.vmcount)})`,
  },
  {
    id: 'max-135-vms',
    reason: 'over 135 vms',
    test: (c) => c.host.vmcount > 135,
    message: (c) =>
      `don't put more than 135 vms on any boxes right now (server cpus= ${perlNum(c.host.cpus)})` +
      ` (server vmcount=${perlNum(c.host.vmcount)})`,
  },
  {
    id: 'cpus',
    usesSize: true,
    reason: 'not enough cpus',
    test: (c) => c.host.cpus < c.size.vcpus,
    message: (c) => `does not have enough cpus (droplet cpus=${perlNum(c.size.vcpus)}) (server= ${perlNum(c.host.cpus)})`,
  },
  {
    id: 'disk',
    usesSize: true,
    reason: 'not enough disk',
    test: (c) => c.host.diskfree_actual < c.size.disk,
    message: (c) => `not enough diskfree on this server. disk=${perlNum(c.size.disk)}`,
  },
  {
    id: 'memory',
    usesSize: true,
    reason: 'not enough memory',
    test: (c) => c.host.memfree < c.size.memory,
    message: (c) => `not enough memory on this server. memfree = ${perlNum(c.host.memfree)}`,
  },
  {
    id: 'memory-512',
    reason: 'under 512 MB free',
    test: (c) => c.host.memfree < 512,
    message: (c) => `hard limit on memory < 512 for now. memfree=${perlNum(c.host.memfree)}`,
  },
  {
    id: 'busy-create',
    reason: 'busy creating',
    waitable: true,
    test: (c) => busyWith(c, 'create'),
    message: (c) => `this server is already busy with creating %busylist->{${c.host.name}}->{create}`,
  },
  {
    id: 'busy-restore',
    reason: 'busy restoring',
    waitable: true,
    test: (c) => busyWith(c, 'restore'),
    message: (c) =>
      `this server is already busy with a restore (which might be part of a migrate) %busylist->{${c.host.name}}->{restore}`,
  },
  {
    id: 'busy-pdu-reboot',
    reason: 'pending pdu_reboot',
    test: (c) => busyWith(c, 'pdu_reboot'),
    message: () => 'this server has a pending pdu_reboot event',
  },
  {
    id: 'busy-ipmi-reboot',
    reason: 'pending ipmi_reboot',
    test: (c) => busyWith(c, 'ipmi_reboot'),
    message: () => 'this server has a pending ipmi_reboot event',
  },
  {
    id: 'busy-node-unresponsive',
    reason: 'node unresponsive',
    test: (c) => busyWith(c, 'node_unresponsive'),
    message: () => 'this server has a pending node_unresponsive event',
  },
];

export const FILTER_IDS: readonly FilterId[] = FILTERS.map((f) => f.id);

const BY_ID = new Map(FILTERS.map((f) => [f.id, f]));

/**
 * The filters to run, in the canonical order whatever order `ids` lists
 * them in. Throws on an unknown id (the caller turns it into a config error).
 */
export function selectFilters(ids: readonly string[] | undefined): FilterPlugin[] {
  if (ids === undefined) return [...FILTERS];
  for (const id of ids) if (!BY_ID.has(id as FilterId)) throw new Error(`unknown filter "${id}"; known: ${FILTER_IDS.join(', ')}`);
  return FILTERS.filter((f) => ids.includes(f.id));
}
