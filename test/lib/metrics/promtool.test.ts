import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { startMetricsServices, type MetricsServices } from '../../helpers/metrics-services.ts';

/** Where promtool is; CI installs it (.ci/run), so only a developer machine may lack it. */
const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
if (!PROMTOOL && process.env.CI) throw new Error('promtool is missing on CI: .ci/run installs it with apt-get install prometheus');
if (!PROMTOOL) console.warn('promtool.test.ts skipped: promtool is not installed (apt-get install prometheus)');

/** Runs `promtool check metrics` on a body; resolves with its exit code and what it said. */
function promtoolCheckMetrics(body: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}

describe.skipIf(!PROMTOOL)('every /metrics endpoint passes promtool check metrics', () => {
  let t: TestDatabase;
  let services: MetricsServices;
  beforeAll(async () => {
    t = await createTestDatabase('promtool');
    services = await startMetricsServices(t);
  });
  afterAll(async () => {
    await services?.close();
    await t?.drop();
  });

  it('is a linter that can fail (a gauge ending in _total is refused)', async () => {
    const { code, output } = await promtoolCheckMetrics('# HELP x_total A gauge.\n# TYPE x_total gauge\nx_total 1\n');
    expect(code).not.toBe(0);
    expect(output).toMatch(/_total/);
  });

  it('lints clean, service by service', async () => {
    const kinds = new Set(services.endpoints.map((e) => e.service));
    expect([...kinds].sort()).toEqual(['cloud', 'cutover-admin', 'event-router', 'fleet', 'harpoon', 'monitor', 'proxy', 'proxy-admin', 'scheduler-v1', 'scheduler-v2']);
    const problems: string[] = [];
    for (const { service: job, url } of services.endpoints) {
      const res = await fetch(url);
      expect(res.status, url).toBe(200);
      const body = await res.text();
      expect(body, `${job} served an empty /metrics`).toMatch(/^# HELP /m);
      const { code, output } = await promtoolCheckMetrics(body);
      if (code !== 0 || output.trim() !== '') problems.push(`${job} (${url}): exit ${code}\n${output}`);
    }
    expect(problems.join('\n')).toBe('');
  });
});
