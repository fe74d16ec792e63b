import type { HostRow } from '../../domain/host.ts';
import { createServer, type Server } from 'node:http';
import type { Knex } from 'knex';
import type { AddressInfo } from 'node:net';
import { formatHostMetrics, type HostMetrics } from '../../lib/metrics/host-metrics.ts';

export interface HostMetricsServer {
  /** The metrics URL (…/metrics). */
  url: string;
  /** The hosts served, by hypervisor name: change it and the next scrape sees the change. */
  hosts: Map<string, HostMetrics>;
  /** Merges fields into one host (it must exist). */
  set(hypervisor: string, fields: Partial<HostMetrics>): void;
  /** Answers with this status and body instead of the metrics (e.g. 500, or malformed text); undefined to stop. */
  fail(failure: { status: number; body: string } | undefined): void;
  /** Scrapes answered so far. */
  readonly scrapes: number;
  close(): Promise<void>;
}

/**
 * A real HTTP endpoint in the host-metrics format (scheduler/HOST_METRICS.md)
 * serving a map the test controls — what one region's fleet exposes.
 *
 * @example
 *   const m = await startHostMetricsServer([{ hypervisor: 'nyc1-hv0001', region: 'nyc1', …, last_report_ms: Date.now() }]);
 *   m.set('nyc1-hv0001', { error_count: 5 });
 */
export async function startHostMetricsServer(initial: Iterable<HostMetrics> = []): Promise<HostMetricsServer> {
  const hosts = new Map<string, HostMetrics>();
  for (const h of initial) hosts.set(h.hypervisor, { ...h });
  let failure: { status: number; body: string } | undefined;
  let scrapes = 0;
  const server: Server = createServer((req, res) => {
    scrapes++;
    if (failure) {
      res.writeHead(failure.status, { 'content-type': 'text/plain' });
      res.end(failure.body);
      return;
    }
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(formatHostMetrics(hosts.values()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    hosts,
    set(hypervisor, fields) {
      const host = hosts.get(hypervisor);
      if (!host) throw new Error(`no host ${hypervisor} in this metrics server`);
      Object.assign(host, fields);
    },
    fail(f) {
      failure = f;
    },
    get scrapes() {
      return scrapes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A `servers` row's live columns, as the legacy agent wrote them (the columns V1 ranks on). */
export type ServerState = Omit<HostRow, 'id'>;

/** What a hypervisor in that state would expose (the fleet mirrors its agent's view). */
export function metricsForServer(server: ServerState, region: string, lastReportMs = Date.now()): HostMetrics {
  return {
    hypervisor: server.name,
    region,
    memfree_mb: server.memfree,
    diskfree_gb: server.diskfree_actual,
    vmcount: server.vmcount,
    cpus: server.cpus,
    error_count: server.error_count,
    state: server.state,
    last_report_ms: lastReportMs,
    memory_mb: server.memory,
    disk_gb: server.disk,
  };
}

/** Every server of the database as metrics, fresh now, grouped by region slug (one endpoint per region). */
export async function metricsFromDatabase(db: Knex): Promise<Map<string, HostMetrics[]>> {
  const rows = (await db('servers as s')
    .join('regions as r', 'r.id', 's.region_id')
    .orderBy('s.id')
    .select('s.name', 's.region_id', 's.cpus', 's.memory', 's.disk', 's.vmcount', 's.memfree', 's.diskfree_actual', 's.error_count', 's.state', 'r.slug')) as Array<
    ServerState & { slug: string }
  >;
  const now = Date.now();
  const out = new Map<string, HostMetrics[]>();
  for (const row of rows) {
    const list = out.get(row.slug) ?? [];
    list.push(metricsForServer(row, row.slug, now));
    out.set(row.slug, list);
  }
  return out;
}
