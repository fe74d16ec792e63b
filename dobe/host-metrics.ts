import { sendError } from '../lib/http/respond.ts';
import type { Router } from '../lib/http/router.ts';
import { formatHostMetrics, type HostMetrics } from '../lib/metrics/host-metrics.ts';

/**
 * The fleet's host metrics (scheduler/HOST_METRICS.md): what each
 * hypervisor's agent knows of itself, served as one Prometheus endpoint per
 * region for Scheduler V2 to scrape.
 *
 * Where they are served — aggregated in the fleet's primary process, not
 * per worker: agents are sliced over worker processes by server id, not by
 * region, so per-worker endpoints would give the scheduler P×R (or P mixed)
 * URLs that change with `agentsPerProcess`; the primary already serves the
 * fleet's `/metrics`, so one listener there serves every region whatever the
 * slicing, and a worker adds no socket. Each worker sends its agents' fixed
 * facts once (`profiles`) and then, every second, five numbers per agent
 * (id, memfree, diskfree, vmcount, alive) over IPC: 75,000 numbers a second
 * at 15,000 hypervisors. A worker that dies stops ticking, so its hosts'
 * `dobe_host_last_report_timestamp_seconds` stops advancing and the
 * scheduler sees them go stale, as it would a dead hypervisor's exporter.
 */

/** A hypervisor's fixed facts, as its agent reads them from its own `servers` row at connect. */
export interface HostProfile {
  name: string;
  region: string;
  cpus: number;
  memory_mb: number;
  disk_gb: number;
  error_count: number;
  /** '' in service; maintenance, draining, … otherwise. */
  state: string;
}

/** Numbers per agent in a tick: server id, memfree MB, diskfree GB, vmcount, alive (1/0). */
export const HOST_TICK_WIDTH = 5;

/** What a worker needs of an agent to report it. */
export interface ReportingAgent {
  readonly serverId: number;
  host(): { memfree: number; diskfree_actual: number; vmcount: number } | undefined;
  alive(): boolean;
}

/** One tick of a worker's agents, flattened (HOST_TICK_WIDTH numbers each); agents not yet measured are left out. */
export function encodeHostTick(agents: Iterable<ReportingAgent>): number[] {
  const out: number[] = [];
  for (const a of agents) {
    const h = a.host();
    if (!h) continue;
    out.push(a.serverId, h.memfree, h.diskfree_actual, h.vmcount, a.alive() ? 1 : 0);
  }
  return out;
}

interface BoardEntry {
  profile: HostProfile;
  memfree: number;
  diskfree: number;
  vmcount: number;
  /** ms; 0 until the first tick in which the agent was alive. */
  lastReportMs: number;
}

export interface HostMetricsBoard {
  setProfiles(profiles: ReadonlyArray<readonly [number, HostProfile]>): void;
  /** Applies one worker tick taken at `atMs` (the worker's clock: when its agents were measured). */
  applyTick(atMs: number, values: readonly number[]): void;
  /** Region slugs with at least one host, sorted. */
  regions(): string[];
  /** The hosts of a region (every region when omitted) that have been measured at least once. */
  hosts(region?: string): HostMetrics[];
  /** The region's endpoint body, rendered at most once per change; undefined for a region with no host. */
  text(region: string): string | undefined;
}

/**
 * The primary's view of every hypervisor's metrics, fed by the workers'
 * ticks.
 *
 * @example
 *   const board = createHostMetricsBoard();
 *   board.setProfiles([[1, { name: 'nyc1-hv0001', region: 'nyc1', cpus: 24, memory_mb: 131072, disk_gb: 1920, error_count: 0, state: '' }]]);
 *   board.applyTick(Date.now(), [1, 60000, 1500, 3, 1]);
 *   board.text('nyc1'); // dobe_host_memfree_mb{hypervisor="nyc1-hv0001",region="nyc1"} 60000 …
 */
export function createHostMetricsBoard(): HostMetricsBoard {
  const entries = new Map<number, BoardEntry>();
  const byRegion = new Map<string, Set<number>>();
  const rendered = new Map<string, string>();

  function toMetrics(e: BoardEntry): HostMetrics {
    const p = e.profile;
    return {
      hypervisor: p.name,
      region: p.region,
      memfree_mb: e.memfree,
      diskfree_gb: e.diskfree,
      vmcount: e.vmcount,
      cpus: p.cpus,
      error_count: p.error_count,
      state: p.state,
      last_report_ms: e.lastReportMs,
      memory_mb: p.memory_mb,
      disk_gb: p.disk_gb,
    };
  }

  return {
    setProfiles(profiles) {
      for (const [id, profile] of profiles) {
        const old = entries.get(id);
        if (old && old.profile.region !== profile.region) byRegion.get(old.profile.region)?.delete(id);
        entries.set(id, old ? { ...old, profile } : { profile, memfree: 0, diskfree: 0, vmcount: 0, lastReportMs: 0 });
        let set = byRegion.get(profile.region);
        if (!set) byRegion.set(profile.region, (set = new Set()));
        set.add(id);
        rendered.delete(profile.region);
      }
    },
    applyTick(atMs, values) {
      for (let i = 0; i + HOST_TICK_WIDTH <= values.length; i += HOST_TICK_WIDTH) {
        const e = entries.get(values[i]!);
        if (!e) continue;
        e.memfree = values[i + 1]!;
        e.diskfree = values[i + 2]!;
        e.vmcount = values[i + 3]!;
        // A stopped agent keeps its last values; only its timestamp stops, so it turns stale.
        if (values[i + 4] === 1) e.lastReportMs = atMs;
        rendered.delete(e.profile.region);
      }
    },
    regions: () => [...byRegion.keys()].filter((r) => (byRegion.get(r)?.size ?? 0) > 0).sort(),
    hosts(region) {
      const ids = region === undefined ? [...entries.keys()] : [...(byRegion.get(region) ?? [])];
      return ids
        .sort((a, b) => a - b)
        .map((id) => entries.get(id)!)
        .filter((e) => e.lastReportMs > 0)
        .map(toMetrics);
    },
    text(region) {
      if (!byRegion.get(region)?.size) return undefined;
      let body = rendered.get(region);
      if (body === undefined) {
        body = formatHostMetrics(this.hosts(region));
        rendered.set(region, body);
      }
      return body;
    },
  };
}

/** Path of a region's host-metrics endpoint on the fleet's HTTP service. */
export const HOST_METRICS_PATH = '/hosts/:region/metrics';

/** `/hosts/<region>/metrics` for a base URL. */
export function hostMetricsUrl(baseUrl: string, region: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/hosts/${encodeURIComponent(region)}/metrics`;
}

/**
 * Adds `GET /hosts/:region/metrics` (the host-metrics format, one region per
 * endpoint) to a service router; an unknown region is a JSON 404.
 */
export function addHostMetricsRoutes(router: Router, board: Pick<HostMetricsBoard, 'text' | 'regions'>): void {
  router.add('GET', HOST_METRICS_PATH, (ctx) => {
    const region = ctx.params.region ?? '';
    const body = board.text(region);
    if (body === undefined) {
      sendError(ctx.res, 404, 'FLEET_ERR_UNKNOWN_REGION', `no hypervisors of region ${JSON.stringify(region.slice(0, 40))} in this fleet; it serves ${board.regions().join(', ') || 'none yet'}`);
      return;
    }
    ctx.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    ctx.res.end(body);
  });
}
