import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpFeatureStateSource } from '../../../lib/cutover/http-state-source.ts';
import type { FeatureStateChange } from '../../../lib/cutover/types.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

const TOKENS = { follower: 'follower-token-0123456789ab' };
const PLAN = validatePlan({
  version: 1,
  features: {
    'event-writes': {
      steps: [
        { name: 'canary-25pct', mode: 'canary', percent: 25, soak_seconds: 0, gates: [] },
        { name: 'full', mode: 'full', soak_seconds: 0, gates: [] },
      ],
    },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the cutover state over HTTP (GET /cutover/state and its follower)', () => {
  let t: TestDatabase;
  let admin: CutoverAdmin;
  let url: string;

  beforeAll(async () => {
    t = await createTestDatabase('cutover_http_state');
    admin = createCutoverAdmin({ db: t.service('proxy'), tokens: TOKENS, services: {}, plan: PLAN, watch: false, stateIntervalMs: 50 });
    url = (await admin.start()).url;
  });
  afterAll(async () => {
    await admin?.close();
    await t?.drop();
  });

  it('refuses a follower without the token', async () => {
    const res = await fetch(`${url}/cutover/state`);
    expect(res.status).toBe(401);
    await expect(createHttpFeatureStateSource({ url, token: 'wrong-token-0123456789abc' }).start()).rejects.toMatchObject({ code: 'CUTOVER_ERR_STATE_UNAVAILABLE' });
  });

  it('follows advances and rollbacks within an interval, and tells its listeners once per change', async () => {
    const source = createHttpFeatureStateSource({ url, token: TOKENS.follower, intervalMs: 50 });
    const changes: FeatureStateChange[] = [];
    source.onChange((c) => changes.push(c));
    await source.start();
    try {
      expect(source.get('event-writes')).toMatchObject({ mode: 'legacy', step: 0 });
      expect(source.all().map((s) => s.feature)).toEqual(expect.arrayContaining(['event-delivery', 'scheduling', 'event-writes', 'event-reads', 'lockdown']));
      await admin.controller.advance('event-writes', 'follower', 'test');
      await waitFor(() => source.get('event-writes')?.mode === 'canary');
      expect(source.get('event-writes')).toMatchObject({ mode: 'canary', percent: 25, step: 1, stepName: 'canary-25pct' });
      await admin.controller.advance('event-writes', 'follower', 'test');
      await waitFor(() => source.get('event-writes')?.mode === 'full');
      await admin.controller.rollback('event-writes', { actor: 'follower', reason: 'test' });
      await waitFor(() => source.get('event-writes')?.mode === 'legacy');
      const seen = changes.filter((c) => c.feature === 'event-writes' && c.previous).map((c) => `${c.previous?.mode}→${c.state.mode}`);
      expect(seen).toEqual(['legacy→canary', 'canary→full', 'full→legacy']);
      // The follower's reads are answered from the admin's memory: they add no query on cutover_features.
      const [[before]] = (await t.db.raw("SHOW GLOBAL STATUS LIKE 'Com_select'")) as [[{ Value: string }]];
      for (let i = 0; i < 20; i++) await source.refresh();
      const [[after]] = (await t.db.raw("SHOW GLOBAL STATUS LIKE 'Com_select'")) as [[{ Value: string }]];
      // The admin's own reader polls every 50 ms during the ~20 refreshes; other tests' servers may add a few.
      expect(Number(after.Value) - Number(before.Value)).toBeLessThan(200);
    } finally {
      await source.close();
    }
  });

  it('keeps the last state while the admin is unreachable, and says how old it is', async () => {
    const flaky: { up: boolean } = { up: true };
    let served = 0;
    const stub: Server = createServer((req, res) => {
      if (!flaky.up) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"code":"X","message":"down"}');
        return;
      }
      served++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ features: [{ feature: 'event-writes', step: 2, stepName: 'full', mode: 'full', percent: 100, regions: null, paused: false, version: 7, updatedAt: new Date().toISOString() }] }));
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    const source = createHttpFeatureStateSource({ url: `http://127.0.0.1:${(stub.address() as AddressInfo).port}`, token: 't', intervalMs: 30 });
    const errors: Error[] = [];
    source.on('poll-error', (e) => errors.push(e));
    try {
      await source.start();
      const firstRead = source.lastReadAt!;
      flaky.up = false;
      await waitFor(() => errors.length >= 3);
      expect(source.get('event-writes')?.mode).toBe('full');
      expect(source.lastReadAt).toEqual(firstRead);
      expect(errors[0]).toMatchObject({ code: 'CUTOVER_ERR_STATE_UNAVAILABLE' });
      flaky.up = true;
      await waitFor(() => source.lastReadAt! > firstRead);
      expect(served).toBeGreaterThan(1);
    } finally {
      await source.close();
      stub.close();
    }
  });

  it('validates its options by name', () => {
    expect(() => createHttpFeatureStateSource({ url: 'not a url', token: 't' })).toThrow(/"url"/);
    expect(() => createHttpFeatureStateSource({ url: 'ftp://x', token: 't' })).toThrow(/"url"/);
    expect(() => createHttpFeatureStateSource({ url, token: '' })).toThrow(/"token"/);
    expect(() => createHttpFeatureStateSource({ url, token: 't', intervalMs: 1 })).toThrow(/"intervalMs"/);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}
