/**
 * The simulated fleet of bench/scheduler.ts: per-region host-metrics
 * endpoints, and agents that finish placed creates. The same for every
 * scheduler run, so runs compare only the schedulers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { formatHostMetrics, type HostMetrics } from '../lib/metrics/host-metrics.ts';

/** One endpoint per region serving the simulated fleet's metrics. */
export async function startFleetMetrics(hosts: Map<string, HostMetrics>): Promise<{ urls: Array<{ name: string; url: string }>; close(): Promise<void> }> {
  const byRegion = new Map<string, HostMetrics[]>();
  for (const h of hosts.values()) byRegion.set(h.region, [...(byRegion.get(h.region) ?? []), h]);
  const servers: Server[] = [];
  const urls: Array<{ name: string; url: string }> = [];
  for (const [region, list] of byRegion) {
    const names = list.map((h) => h.hypervisor);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(formatHostMetrics(names.map((n) => hosts.get(n)!)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    urls.push({ name: region, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics` });
  }
  return {
    urls,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((r) => (s.close(() => r()), s.closeAllConnections()))));
    },
  };
}

/** Simulated agents: finish placed creates, apply them to servers rows and to the metrics. */
export function startAgents(db: Knex, hosts: Map<string, HostMetrics>, names: Map<number, string>, sinceEventId: number, agentTickMs: number) {
  let stopped = false;
  let finished = 0;
  const loop = (async () => {
    while (!stopped) {
      const rows = (await db('events as e')
        .join('droplets as d', 'd.id', 'e.droplet_id')
        .join('sizes as z', 'z.id', 'd.size_id')
        .where('e.id', '>', sinceEventId)
        .where({ 'e.type': 'create', 'e.status': 'pending' })
        .whereNotNull('e.server_id')
        .orderBy('e.id')
        .limit(1000)
        .select('e.id', 'e.server_id', 'e.droplet_id', 'z.memory', 'z.disk')) as Array<{ id: number; server_id: number; droplet_id: number; memory: number; disk: number }>;
      if (rows.length > 0) {
        const perHost = new Map<number, { memory: number; disk: number; n: number }>();
        for (const r of rows) {
          const h = perHost.get(r.server_id) ?? { memory: 0, disk: 0, n: 0 };
          h.memory += r.memory;
          h.disk += r.disk;
          h.n++;
          perHost.set(r.server_id, h);
        }
        // One short transaction of three statements, as a thousand agents finishing at once would look to MySQL.
        const hostsDone = [...perHost].sort((a, b) => a[0] - b[0]);
        const cases = (pick: (d: { memory: number; disk: number; n: number }) => number) => ({
          sql: `CASE id ${hostsDone.map(() => 'WHEN ? THEN ?').join(' ')} END`,
          bindings: hostsDone.flatMap(([id, d]) => [id, pick(d)]),
        });
        const mem = cases((d) => d.memory);
        const disk = cases((d) => d.disk);
        const vms = cases((d) => d.n);
        await db.transaction(
          async (trx) => {
            // The host rows first, in ascending id order (the IN list is walked in key order). Updating events
            // and droplets first would take shared locks on those rows (foreign-key checks) and then upgrade
            // them: the classic S-to-X deadlock with a scheduler holding the same host rows.
            await trx.raw(
              `UPDATE servers SET memfree = memfree - ${mem.sql}, diskfree_actual = diskfree_actual - ${disk.sql}, vmcount = vmcount + ${vms.sql}
                WHERE id IN (${hostsDone.map(() => '?').join(',')})`,
              [...mem.bindings, ...disk.bindings, ...vms.bindings, ...hostsDone.map(([id]) => id)],
            );
            await trx('events').whereIn('id', rows.map((r) => r.id)).update({ status: 'done', started_at: trx.raw('CURRENT_TIMESTAMP(3)'), finished_at: trx.raw('CURRENT_TIMESTAMP(3)') });
            await trx('droplets').whereIn('id', rows.map((r) => r.droplet_id)).update({ status: 'active' });
          },
          { isolationLevel: 'read committed' },
        );
        for (const [id, d] of perHost) {
          const m = hosts.get(names.get(id)!)!;
          m.memfree_mb -= d.memory;
          m.diskfree_gb -= d.disk;
          m.vmcount += d.n;
        }
        finished += rows.length;
      }
      await new Promise((r) => setTimeout(r, agentTickMs));
    }
  })();
  // Live agents report on their own clock, whatever the database is doing.
  const reporter = setInterval(() => {
    const now = Date.now();
    for (const m of hosts.values()) m.last_report_ms = now;
  }, 200);
  return {
    get finished() {
      return finished;
    },
    async stop() {
      stopped = true;
      clearInterval(reporter);
      await loop;
    },
  };
}
