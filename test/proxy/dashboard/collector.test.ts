import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDashboardCollector } from '../../../proxy/dashboard/collector.ts';

/** A /metrics endpoint whose counters the test moves between scrapes. */
let n = 0;
function exposition(): string {
  return [
    'mysql_global_status_threads_connected 120',
    'mysql_global_variables_max_connections 151',
    'mysql_info_schema_processes_by_user{mysql_user="dobe"} 100',
    'mysql_info_schema_processes_by_user{mysql_user="cloud"} 8',
    `mysql_info_schema_user_statistics_select_commands_total{user="dobe"} ${1000 + 50 * n}`,
    `proxy_requests_total{feature="droplet-api",route="/v2/droplets",target="legacy",status="200"} ${100 * n}`,
    `proxy_requests_total{feature="droplet-api",route="/v2/droplets",target="legacy",status="502"} ${10 * n}`,
    `proxy_shadow_comparisons_total{feature="droplet-api",route="/v2/droplets",result="match"} ${30 * n}`,
    `proxy_shadow_comparisons_total{feature="droplet-api",route="/v2/droplets",result="mismatch"} ${10 * n}`,
    // 10 deliveries per scrape: 5 under 10 ms, 5 between 50 and 100 ms.
    `router_delivery_latency_seconds_bucket{le="0.01"} ${5 * n}`,
    `router_delivery_latency_seconds_bucket{le="0.05"} ${5 * n}`,
    `router_delivery_latency_seconds_bucket{le="0.1"} ${10 * n}`,
    `router_delivery_latency_seconds_bucket{le="+Inf"} ${10 * n}`,
    'cutover_feature_step{feature="event-delivery",step_name="nyc1",mode="canary"} 2',
    '',
  ].join('\n');
}

describe('the dashboard collector', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end(exposition()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('derives every panel from real scrapes: gauges, rates, ratios, quantiles, steps', async () => {
    const c = createDashboardCollector({ sources: [{ job: 'all', url }, { job: 'down', url: 'http://127.0.0.1:1' }], intervalMs: 100, windowTicks: 2 });
    for (n = 0; n < 3; n++) {
      await c.tick();
      await new Promise((r) => setTimeout(r, 120));
    }
    const d = c.data();
    const last = (id: keyof typeof d.charts, series: string) => {
      const chart = d.charts[id];
      const col = chart.data[chart.series.indexOf(series) + 1]!;
      return col[col.length - 1];
    };
    expect(d.charts.connections.series).toEqual(['total', 'user cloud', 'user dobe']);
    expect(last('connections', 'total')).toBe(120);
    expect(d.max_connections).toBe(151);
    const dt = d.charts.polling.data[0]![2]! - d.charts.polling.data[0]![1]!;
    expect(last('polling', 'SELECTs by dobe')).toBeCloseTo(50 / dt, 0);
    expect(last('requests', 'droplet-api → legacy')).toBeCloseTo(110 / dt, 0);
    expect(last('errors', 'droplet-api → legacy')).toBeCloseTo(10 / dt, 0);
    expect(last('shadow', 'droplet-api')).toBeCloseTo(0.25);
    expect(last('latency', 'p50 (ms)')).toBeCloseTo(10, 0);
    expect(last('latency', 'p99 (ms)')).toBeCloseTo(99, 0);
    expect(d.steps).toEqual([{ feature: 'event-delivery', step: 2, step_name: 'nyc1', mode: 'canary' }]);
    expect(d.sources.map((s) => [s.job, s.up])).toEqual([['all', true], ['down', false]]);
    // The first reading has no rate yet.
    expect(d.charts.requests.data[1]![0]).toBeNull();
    await c.close();
  });
});
