import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { runCli } from '../helpers/cli.ts';
import { startCliService } from '../helpers/cli-service.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { freePort } from '../helpers/router.ts';

const SERVICES = ['proxy', 'admin', 'monitor', 'router', 'scheduler', 'harpoon', 'cloud'];

describe('strangler serve <service>: each part by itself, from its files and environment', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('serve');
  });
  afterAll(() => t?.drop());

  it('answers --help for every service, naming its environment and --json; refuses an unknown one', async () => {
    for (const service of SERVICES) {
      const help = await runCli(['serve', service, '--help']);
      expect(help.code, service).toBe(0);
      expect(help.stdout, service).toMatch(new RegExp(`^Usage: strangler (serve ${service}|proxy)`));
      expect(help.stdout, service).toContain('--json');
    }
    expect((await runCli(['serve', 'router', '--help'])).stdout).toContain('ROUTER_MYSQL_URL');
    const unknown = await runCli(['serve', 'mainframe']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown service "mainframe"');
  }, 120_000);

  it('serve admin: exit 2 naming what is missing or the bad JSON path; up from a plan file with --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-admin-'));
    const plan = join(dir, 'plan.json');
    writeFileSync(plan, JSON.stringify({ version: 1, features: { billing: { steps: [{ name: 'all', mode: 'full', soak_seconds: 0, gates: [{ kind: 'gauge', service: 'billing', metric: 'up', min: 1 }] }] } } }));
    const env = { ADMIN_MYSQL_URL: formatMysqlUrl(t.admin), STRANGLER_ADMIN_TOKEN: 'operator-token-0123456789' };
    const noDb = await runCli(['serve', 'admin', '--plan', plan], { env: { ...env, ADMIN_MYSQL_URL: '' } });
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain('ADMIN_MYSQL_URL');
    const badPlan = join(dir, 'bad.json');
    writeFileSync(badPlan, JSON.stringify({ version: 1, features: { billing: { steps: [{ name: 'all', mode: 'full', soak_seconds: 'soon', gates: [] }] } } }));
    const bad = await runCli(['serve', 'admin', '--plan', badPlan], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('features.billing.steps[0].soak_seconds: must be an integer');
    const port = await freePort();
    const admin = await startCliService<{ service: string; url: string; features: string[]; missing_services: string[] }>(['serve', 'admin', '--plan', plan, '--port', String(port), '--json'], env);
    try {
      expect(admin.info).toMatchObject({ service: 'admin', url: `http://127.0.0.1:${port}`, features: ['billing'], missing_services: ['billing'] });
      const status = await runCli(['cutover', 'status', '--json', '--url', admin.info.url], { env });
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).features.map((f: { feature: string }) => f.feature)).toEqual(['billing']);
    } finally {
      expect(await admin.stop()).toBe(0);
    }
  }, 120_000);

  it('serve monitor: the database\'s metrics in mysqld_exporter\'s names', async () => {
    const port = await freePort();
    const monitor = await startCliService<{ service: string; url: string }>(['serve', 'monitor', '--port', String(port), '--json'], { MONITOR_MYSQL_URL: formatMysqlUrl(t.service('strangler_monitor')) });
    try {
      expect(monitor.info.service).toBe('monitor');
      expect(await (await fetch(`${monitor.info.url}/metrics`)).text()).toMatch(/^mysql_global_status_threads_connected \d+/m);
    } finally {
      expect(await monitor.stop()).toBe(0);
    }
  }, 90_000);
});
