import { escapeLabelValue, type Sample } from './prom-text.ts';

/**
 * What Scheduler V2 knows of one hypervisor, from its metrics (the format is
 * specified in scheduler/HOST_METRICS.md). Memory in MB, disk in GB.
 */
export interface HostMetrics {
  hypervisor: string;
  region: string;
  memfree_mb: number;
  diskfree_gb: number;
  vmcount: number;
  cpus: number;
  error_count: number;
  /** '' when in service; anything else ('maintenance', 'draining', …) takes the host out, as in V1. */
  state: string;
  /** When the hypervisor last measured itself, in ms since the epoch (the gauge is in seconds). */
  last_report_ms: number;
  /** Total memory and disk, when exposed (informational; capacity checks use the inventory). */
  memory_mb?: number;
  disk_gb?: number;
}

/** The metric names of the format, by HostMetrics field. */
export const HOST_METRIC = {
  memfree_mb: 'dobe_host_memfree_mb',
  diskfree_gb: 'dobe_host_diskfree_gb',
  vmcount: 'dobe_host_vmcount',
  cpus: 'dobe_host_cpus',
  error_count: 'dobe_host_error_count',
  state: 'dobe_host_state_info',
  last_report_ms: 'dobe_host_last_report_timestamp_seconds',
  memory_mb: 'dobe_host_memory_mb',
  disk_gb: 'dobe_host_disk_gb',
} as const;

const HELP: Record<keyof typeof HOST_METRIC, string> = {
  memfree_mb: 'Free memory on the hypervisor in MB, as its agent last measured it.',
  diskfree_gb: 'Free disk on the hypervisor in GB (diskfree_actual).',
  vmcount: 'Droplets running on the hypervisor.',
  cpus: 'Physical CPU cores of the hypervisor.',
  error_count: 'Recent errors on the hypervisor (V1 skips a host with more than 3).',
  state: 'Always 1; the state label is "" when the hypervisor is in service, else maintenance, draining, ….',
  last_report_ms: 'Unix time in seconds at which the hypervisor last measured the values above.',
  memory_mb: 'Total memory of the hypervisor in MB.',
  disk_gb: 'Total disk of the hypervisor in GB.',
};

const NUMERIC_FIELDS = ['memfree_mb', 'diskfree_gb', 'vmcount', 'cpus', 'error_count'] as const;

/**
 * Renders hosts in the host-metrics format (one endpoint may carry many
 * hypervisors; series are grouped by metric, as the format requires).
 *
 * @example
 *   formatHostMetrics([{ hypervisor: 'nyc1-hv0001', region: 'nyc1', memfree_mb: 65536, diskfree_gb: 1500,
 *     vmcount: 10, cpus: 24, error_count: 0, state: '', last_report_ms: Date.now() }]);
 */
export function formatHostMetrics(hosts: Iterable<HostMetrics>): string {
  const list = [...hosts];
  const lines: string[] = [];
  for (const field of Object.keys(HOST_METRIC) as Array<keyof typeof HOST_METRIC>) {
    const name = HOST_METRIC[field];
    const rows = field === 'memory_mb' || field === 'disk_gb' ? list.filter((h) => h[field] !== undefined) : list;
    if (rows.length === 0) continue;
    lines.push(`# HELP ${name} ${HELP[field]}`, `# TYPE ${name} gauge`);
    for (const h of rows) {
      const base = `hypervisor="${escapeLabelValue(h.hypervisor)}",region="${escapeLabelValue(h.region)}"`;
      if (field === 'state') lines.push(`${name}{${base},state="${escapeLabelValue(h.state)}"} 1`);
      else if (field === 'last_report_ms') lines.push(`${name}{${base}} ${h.last_report_ms / 1000}`);
      else lines.push(`${name}{${base}} ${h[field]}`);
    }
  }
  return lines.join('\n') + '\n';
}

export interface HostMetricsSnapshot {
  hosts: Map<string, HostMetrics>;
  /** Hypervisors that appeared but lack a required series (or carry NaN): treated as having no metrics. */
  incomplete: string[];
}

interface CollectedHost {
  hypervisor: string;
  region?: string;
  values: Partial<Record<keyof typeof HOST_METRIC, number>>;
  states: Array<{ state: string; value: number }>;
}

/**
 * Turns parsed samples into hosts. Series of other metrics are ignored, so
 * the format can share an endpoint with anything else. A host missing one
 * of the required series is reported in `incomplete`, never half-filled.
 */
export function hostMetricsFromSamples(samples: readonly Sample[]): HostMetricsSnapshot {
  const byName = new Map<string, keyof typeof HOST_METRIC>(
    (Object.entries(HOST_METRIC) as Array<[keyof typeof HOST_METRIC, string]>).map(([field, name]) => [name, field]),
  );
  const partial = new Map<string, CollectedHost>();
  for (const s of samples) {
    const field = byName.get(s.name);
    const hypervisor = s.labels.hypervisor;
    if (!field || !hypervisor) continue;
    let p = partial.get(hypervisor);
    if (!p) partial.set(hypervisor, (p = { hypervisor, values: {}, states: [] }));
    if (s.labels.region !== undefined) p.region = s.labels.region;
    if (field === 'state') p.states.push({ state: s.labels.state ?? '', value: s.value });
    else p.values[field] = s.value;
  }
  const hosts = new Map<string, HostMetrics>();
  const incomplete: string[] = [];
  for (const p of partial.values()) {
    const on = p.states.filter((x) => x.value === 1);
    // Two states "on" at once: believe the one that keeps the scheduler away.
    const state = on.length === 0 ? undefined : (on.find((x) => x.state !== '') ?? on[0]!).state;
    const ts = p.values.last_report_ms;
    const complete = NUMERIC_FIELDS.every((f) => Number.isFinite(p.values[f])) && state !== undefined && Number.isFinite(ts);
    if (!complete) {
      incomplete.push(p.hypervisor);
      continue;
    }
    const host: HostMetrics = {
      hypervisor: p.hypervisor,
      region: p.region ?? '',
      memfree_mb: p.values.memfree_mb!,
      diskfree_gb: p.values.diskfree_gb!,
      vmcount: p.values.vmcount!,
      cpus: p.values.cpus!,
      error_count: p.values.error_count!,
      state,
      last_report_ms: ts! * 1000,
    };
    if (Number.isFinite(p.values.memory_mb)) host.memory_mb = p.values.memory_mb!;
    if (Number.isFinite(p.values.disk_gb)) host.disk_gb = p.values.disk_gb!;
    hosts.set(p.hypervisor, host);
  }
  return { hosts, incomplete };
}
