import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCutoverAdmin, type CutoverAdmin } from '../../proxy/cutover/admin.ts';
import { DEFAULT_PLAN_URL, validatePlan } from '../../proxy/cutover/plan.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const TOKEN = 'operator-token-0123456789abcdef';

const PLAN = validatePlan({
  version: 1,
  features: {
    'event-delivery': {
      steps: [
        {
          name: 'nyc1',
          mode: 'canary',
          regions: ['nyc1'],
          // Long enough that a second CLI process (slow to start on a busy machine) still finds it soaking.
          soak_seconds: 20, // long enough that the next CLI process starts inside it on a loaded machine
          gates: [
            {
              name: 'stream-errors',
              kind: 'error_rate',
              service: 'proxy',
              errors: `proxy_requests_total{feature='event-delivery',status=~'5..'}`,
              total: `proxy_requests_total{feature='event-delivery'}`,
              max: 0.01,
            },
          ],
        },
        { name: 'all-regions', mode: 'full', soak_seconds: 1, gates: [] },
      ],
    },
    scheduling: { steps: [{ name: 'full', mode: 'full', soak_seconds: 0, gates: [] }] },
  },
});

describe('strangler cutover (the real binary)', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let upstream: Server;
  let env: NodeJS.ProcessEnv;
  const registry = new Registry();
  const requests = new Counter({ name: 'proxy_requests_total', help: 'r', labelNames: ['feature', 'status'], registers: [registry] });
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(['cutover', ...args], { env: { ...env, ...extra } });
  const row = async () => (await t.db('cutover_features').where({ feature: 'event-delivery' }).first()) as Record<string, any>;

  beforeAll(async () => {
    t = await createTestDatabase('cutover_cli');
    upstream = createServer((_req, res) => {
      void registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      tokens: { operator: TOKEN },
      services: { proxy: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
      plan: PLAN,
      watch: false,
    });
    const { url } = await admin.start();
    env = { STRANGLER_ADMIN_URL: url, STRANGLER_ADMIN_TOKEN: TOKEN };
  });

  afterAll(async () => {
    await admin?.close();
    upstream?.close();
    await t?.drop();
  });

  it('answers --help for every verb without contacting anything', async () => {
    const top = await runCli(['cutover', '--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^Usage: strangler cutover <verb>/);
    for (const verb of ['status', 'plan', 'advance', 'rollback', 'pause', 'resume', 'history']) {
      const help = await runCli(['cutover', verb, '--help'], { env: { STRANGLER_ADMIN_URL: 'http://127.0.0.1:1' } });
      expect(help.code, verb).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: strangler cutover ${verb}`));
      expect(help.stdout).toContain('--json');
      expect(help.stdout).toContain('--token');
    }
    const bad = await runCli(['cutover', 'advance', 'Tele Port']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"Tele Port" is not a feature name');
    expect((await runCli(['cutover', 'rollback', 'scheduling', '--to', 'yesterday'])).code).toBe(2);
    expect((await runCli(['cutover', 'frobnicate'])).code).toBe(2);
  });

  it('says clearly when the token is missing or wrong (exit 1), and changes nothing', async () => {
    const before = await row();
    const missing = await cli(['advance', 'event-delivery'], { STRANGLER_ADMIN_TOKEN: '' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('CUTOVER_ERR_UNAUTHORIZED');
    expect(missing.stderr).toContain('No token was given: pass --token or set STRANGLER_ADMIN_TOKEN');
    const wrong = await cli(['status', '--token', 'not-the-token-at-all-xxxx']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('The token was refused');
    expect(wrong.stderr + wrong.stdout).not.toContain(TOKEN);
    expect(await row()).toEqual(before);
    const unreachable = await cli(['status', '--url', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('CUTOVER_ERR_UNREACHABLE');
  });

  it('runs every verb: status, plan, advance (refused with readings: exit 3), rollback, pause, resume, history', async () => {
    const status = await cli(['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^FEATURE\s+STEP\s+MODE\s+PERCENT\s+REGIONS\s+PAUSED\s+SOAK\s+LAST CHANGE/);
    expect(status.stdout).toMatch(/event-delivery\s+0\/2 legacy\s+legacy\s+0%\s+-\s+no\s+-\s+-/);

    const plan = await cli(['plan']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('1. nyc1: canary 100% of nyc1, soak 20s');
    expect(plan.stdout).toContain('gate stream-errors: error rate <= 1%');

    const advance = await cli(['advance', 'event-delivery', '--reason', 'start the canary']);
    expect(advance.code, advance.stderr).toBe(0);
    expect(advance.stdout).toContain('event-delivery: advanced to step 1/2 nyc1 (canary, 100%, regions nyc1); soak 20s');
    const advancedAt = Date.now();

    const soaking = await cli(['advance', 'event-delivery']);
    expect(soaking.code).toBe(3);
    expect(soaking.stderr).toContain('CUTOVER_ERR_SOAKING');

    requests.inc({ feature: 'event-delivery', status: '200' }, 80);
    requests.inc({ feature: 'event-delivery', status: '502' }, 20);
    await new Promise((r) => setTimeout(r, Math.max(0, advancedAt + 20_100 - Date.now())));
    const before = await row();
    const refused = await cli(['advance', 'event-delivery', '--reason', 'ship it']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('CUTOVER_ERR_GATE_FAILED');
    expect(refused.stderr).toMatch(/gate readings \(1 of 1 not passing\):\n\s+GATE\s+VERDICT\s+KIND\s+SERVICE\s+READING\n\s+stream-errors\s+FAIL\s+error_rate\s+proxy\s+20\.00% \(20\/100 requests/);
    expect(await row()).toEqual(before);
    const refusedJson = await cli(['advance', 'event-delivery', '--json']);
    expect(refusedJson.code).toBe(3);
    expect(JSON.parse(refusedJson.stdout)).toMatchObject({ status: 422, code: 'CUTOVER_ERR_GATE_FAILED', readings: [{ gate: 'stream-errors', verdict: 'fail', value: 0.2 }] });

    const pause = await cli(['pause', 'event-delivery', '--reason', 'investigating', '--json']);
    expect(pause.code).toBe(0);
    expect(JSON.parse(pause.stdout)).toMatchObject({ changed: true, action: 'pause', status: { paused: true } });
    const statusJson = JSON.parse((await cli(['status', '--json'])).stdout);
    expect(statusJson.features[0]).toMatchObject({ feature: 'event-delivery', step: 1, paused: true, last_change: { action: 'pause', actor: 'operator' } });
    const human = await cli(['status']);
    expect(human.stdout).toMatch(/event-delivery\s+1\/2 nyc1\s+canary\s+100%\s+nyc1\s+yes\s+done\s+pause by operator \d+s ago/);
    expect((await cli(['resume', 'event-delivery'])).stdout).toContain('event-delivery: resumed at step 1/2 nyc1');

    const rollback = await cli(['rollback', 'event-delivery', '--to', 'previous', '--reason', '20% 5xx']);
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toContain('event-delivery: rolled back to step 0/2 legacy');
    expect(await row()).toMatchObject({ step: 0, mode: 'legacy' });

    const history = await cli(['history', '--feature', 'event-delivery']);
    expect(history.code).toBe(0);
    const lines = history.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID\s+AT\s+FEATURE\s+ACTION\s+STEP\s+ACTOR\s+REASON/);
    expect(lines[1]).toMatch(/rollback\s+1->0\s+operator\s+20% 5xx/);
    expect(history.stdout).toMatch(/advance-refused\s+1\s+operator\s+ship it/);
    expect(history.stdout).toMatch(/readings:\n\s+stream-errors fail: 20\.00%/);
    const historyJson = JSON.parse((await cli(['history', '--feature', 'event-delivery', '--limit', '2', '--json'])).stdout);
    expect(historyJson.entries.map((e: { action: string }) => e.action)).toEqual(['rollback', 'resume']);
  }, 180_000);

  it('checks a plan file locally, naming the bad fields', async () => {
    const ok = await runCli(['cutover', 'plan', '--file', new URL(DEFAULT_PLAN_URL).pathname]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('is a valid plan');
    const dir = mkdtempSync(join(tmpdir(), 'cutover-plan-'));
    const file = join(dir, 'plan.json');
    writeFileSync(file, JSON.stringify({ version: 1, features: { 'event-delivery': { steps: [{ name: 'x', mode: 'canary', soak_seconds: 5, gates: [] }] } } }));
    const bad = await runCli(['cutover', 'plan', '--file', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('features.event-delivery.steps[0].percent: a canary step needs percent, regions or both');
    expect(bad.stderr).toContain('features.event-delivery.steps[0].mode: the last step must be "full"');
  });
});
