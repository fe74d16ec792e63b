import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHypervisorKeys } from '../../lib/auth/hypervisor-keys.ts';
import { mintHypervisorToken } from '../../lib/auth/hypervisor-token.ts';
import { createEventRouter, type EventRouter } from '../../router/event-router.ts';
import { createMysqlEventSource } from '../../legacy/router/mysql-source.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { openStream, setEventDelivery } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * Issue 12, point 1 (the hypervisor half): tokens were an HMAC under a public constant, with no key id,
 * no expiry and no revocation, and a second stream evicted the first with no limit. Now the key ring is
 * random, kept 0600, rotated and retired with `strangler secrets`, followed live by the router; a host is
 * revoked alone; a second stream for a host is rate-limited, logged and counted.
 */
describe('hypervisor token keys: rotation, retirement, revocation, takeover limit (issue 12 point 1)', () => {
  let t: TestDatabase;
  let router: EventRouter;
  let url: string;
  let region: string;
  let hostId: number;
  const dir = mkdtempSync(join(tmpdir(), 'strangler-secrets-'));
  const env = { STRANGLER_SECRETS_DIR: dir };
  const file = join(dir, 'hypervisor-keys.json');
  const registry = new Registry();
  const mode = async (token: string) => (await fetch(`${url}/v1/regions/${region}/hypervisors/${hostId}/mode`, { headers: { authorization: `Bearer ${token}` } })).status;
  const cli = async (...args: string[]) => {
    const r = await runCli(['secrets', ...args, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  beforeAll(async () => {
    t = await createTestDatabase('adv_hvkeys');
    const seed = await seedWorld(t.db, { hypervisors: 2, regions: 1 });
    await t.db('events').del();
    await setEventDelivery(t.db, { mode: 'full' });
    region = seed.regions[0]!.slug;
    hostId = seed.servers[0]!.id;
    const where = await cli('where');
    expect(where.hypervisor_keys).toBe(file);
    router = createEventRouter({ legacySource: createMysqlEventSource, db: t.service('event_router'), region, hypervisorKeys: { file }, pollIntervalMs: 200, port: 0, registry, takeoverIntervalMs: 60_000 });
    url = (await router.start()).url;
  });
  afterAll(async () => {
    await router?.close();
    await t?.drop();
  });

  it('keeps the keys where only their owner reads them, and never prints one', async () => {
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'stack-secrets.json')).mode & 0o777).toBe(0o600);
    const where = await runCli(['secrets', 'where'], { env });
    for (const k of loadHypervisorKeys(file).keys) expect(where.stdout).not.toContain(k.key);
  });

  it('a rotated key signs, the old one is accepted until retired, then refused; a revoked host alone is refused', async () => {
    const old = mintHypervisorToken(loadHypervisorKeys(file), hostId, region);
    expect(await mode(old)).toBe(200);
    const { kid } = (await cli('rotate-hv-key')) as { kid: string };
    const fresh = mintHypervisorToken(loadHypervisorKeys(file), hostId, region);
    expect(fresh).toContain(`hv.${kid}.`);
    await waitFor(async () => (await mode(fresh)) === 200, 10_000);
    expect(await mode(old)).toBe(200);
    const oldKid = old.split('.')[1]!;
    await cli('retire-hv-key', oldKid);
    await waitFor(async () => (await mode(old)) === 401, 10_000);
    expect(await mode(fresh)).toBe(200);
    // Revoking the host refuses its tokens issued before (minted a second ago at least); a new one works.
    await new Promise((r) => setTimeout(r, 1100));
    await cli('revoke-host', String(hostId));
    await waitFor(async () => (await mode(fresh)) === 401, 10_000);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await mode(mintHypervisorToken(loadHypervisorKeys(file), hostId, region))).toBe(200);
  });

  it('a second stream for a host replaces the first a few times; then it is refused with 429, and each is counted', async () => {
    const token = mintHypervisorToken(loadHypervisorKeys(file), hostId, region);
    const streamUrl = `${url}/v1/regions/${region}/hypervisors/${hostId}/events`;
    let holder = await openStream(streamUrl, { authorization: `Bearer ${token}` });
    expect(holder.status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const next = await openStream(streamUrl, { authorization: `Bearer ${token}` });
      expect(next.status).toBe(200);
      await holder.ended;
      holder = next;
    }
    const refused = await openStream(streamUrl, { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(429);
    expect(refused.body).toContain('ROUTER_ERR_TAKEOVER_LIMITED');
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/router_stream_takeovers_total\{outcome="replaced"\} 3/);
    expect(metrics).toMatch(/router_stream_takeovers_total\{outcome="refused"\} 1/);
    holder.close();
    refused.close();
  });
});
