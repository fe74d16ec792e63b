import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { openConnection } from '../../../lib/db/connection.ts';
import { createMonitor } from '../../../lib/metrics/create-monitor.ts';
import { parsePromText, sumSamples } from '../../../lib/metrics/prom-text.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

/** One sample's value; a missing metric fails the test here, with its name. */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const value = sumSamples(parsePromText(text).samples, name, labels);
  if (value === undefined) throw new Error(`metric ${name} ${JSON.stringify(labels)} not found`);
  return value;
}

describe('the MySQL monitor', () => {
  let t: TestDatabase;
  const conns: Connection[] = [];
  beforeAll(async () => {
    t = await createTestDatabase('monitor');
    for (let i = 0; i < 7; i++) conns.push(await openConnection(t.service('dobe')));
    for (let i = 0; i < 2; i++) conns.push(await openConnection(t.service('cloud')));
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.end()));
    await t.drop();
  });

  it('exposes the server-measured connections under mysqld_exporter names', async () => {
    const monitor = createMonitor({ db: t.service('strangler_monitor'), database: t.name });
    const { url } = await monitor.start();
    try {
      const text = await (await fetch(`${url}/metrics`)).text();
      expect(metricValue(text, 'mysql_info_schema_processes_by_user', { mysql_user: 'dobe' })).toBe(7);
      expect(metricValue(text, 'mysql_info_schema_processes_by_user', { mysql_user: 'cloud' })).toBe(2);
      const [[status]] = (await t.db.raw("SHOW GLOBAL STATUS LIKE 'Threads_connected'")) as [[{ Value: string }]];
      const connected = metricValue(text, 'mysql_global_status_threads_connected');
      // Other test files share the server: the reading must be the server's, near what it says now.
      expect(Math.abs(connected - Number(status.Value))).toBeLessThan(400);
      expect(connected).toBeGreaterThanOrEqual(9);
      expect(metricValue(text, 'mysql_global_status_max_used_connections')).toBeGreaterThanOrEqual(connected);
      expect(metricValue(text, 'mysql_global_status_questions')).toBeGreaterThan(0);
      expect(metricValue(text, 'mysql_up')).toBe(1);
      expect(text).toMatch(/^mysql_info_schema_processlist_threads\{command="sleep",state="idle"\} \d+$/m);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      await monitor.close();
      await monitor.close();
    }
  });
});
