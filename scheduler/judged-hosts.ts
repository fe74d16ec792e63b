import type { FilterContext, FilterPlugin, HostCandidate, SizeSpec } from './filters.ts';

/** What judging a host needs besides the host (a subset of RankOptions). */
export interface JudgeOptions {
  filters: readonly FilterPlugin[];
  /** vCPU overcommit: V1's `$overage = cpus * overcommit`. */
  overcommit: number;
  maxStalenessMs: number;
}

// The filters judged here never read the size (those that do say `usesSize`); the context still carries one.
const NO_SIZE: SizeSpec = { slug: '', memory: 0, vcpus: 0, disk: 0 };

/**
 * Hosts with the filters that depend on the host alone (metrics age, errors, state, vm counts, busy
 * lists) judged once, for every event ranked against them: per event only the filters that read the
 * size still run, and only those ahead of the host's own first rejection, so the filter reported for a
 * host is still the first one in the chain that rejects it (V1's elsif chain). A placement round keeps
 * one per region and replaces a host when it books a placement on it (`replace`).
 *
 * @example
 *   const judged = new JudgedHosts(inventory.candidatesFor(store, regionId, Date.now()), options);
 *   rankHosts(judged, request, options);
 */
export class JudgedHosts {
  readonly hosts: HostCandidate[];
  /** Per host: the index in `filters` of the first size-independent filter that rejects it, or `filters.length`. */
  readonly firstReject: Uint16Array;
  /** Indices in `filters` of the filters that read the size, ascending. */
  readonly sizeFilters: readonly number[];
  private index: Map<number, number> | undefined;

  constructor(
    hosts: readonly HostCandidate[],
    readonly options: JudgeOptions,
  ) {
    this.hosts = [...hosts];
    this.firstReject = new Uint16Array(this.hosts.length);
    const sizeFilters: number[] = [];
    options.filters.forEach((f, i) => {
      if (f.usesSize) sizeFilters.push(i);
    });
    this.sizeFilters = sizeFilters;
    for (let i = 0; i < this.hosts.length; i++) this.judge(i);
  }

  /** Whether these verdicts hold for `options` (same filters, overcommit and staleness limit). */
  judgedFor(options: JudgeOptions): boolean {
    return options.filters === this.options.filters && options.overcommit === this.options.overcommit && options.maxStalenessMs === this.options.maxStalenessMs;
  }

  /** Replaces the host with the same id (a fresh view of it) and judges it again; false if it is not here. */
  replace(host: HostCandidate): boolean {
    this.index ??= new Map(this.hosts.map((h, i) => [h.id, i]));
    const i = this.index.get(host.id);
    if (i === undefined) return false;
    this.hosts[i] = host;
    this.judge(i);
    return true;
  }

  private judge(i: number): void {
    const { filters, overcommit, maxStalenessMs } = this.options;
    const host = this.hosts[i]!;
    const context: FilterContext = { host, size: NO_SIZE, overage: host.cpus * overcommit, maxStalenessMs };
    let first = filters.length;
    for (let k = 0; k < filters.length; k++) {
      const f = filters[k]!;
      if (!f.usesSize && f.test(context)) {
        first = k;
        break;
      }
    }
    this.firstReject[i] = first;
  }
}
