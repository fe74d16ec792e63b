import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenDigest } from '../../lib/auth/admin-token.ts';
import { freePort } from '../../lib/net/free-port.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { spawnSchedulerProcess } from '../../scheduler/process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent, waitFor } from '../helpers/seeded.ts';

/**
 * Issue 12 point 7: Scheduler V2's POST /explain answered anyone, told them on
 * which hosts a given customer's droplets are (the `fallback` marks of a
 * request with that customer_id), and ran in the placement queue. Now it
 * needs an admin token with the `explain` scope, ranks with the customer's
 * own hosts only for `placements`, and runs beside placement, at most
 * explainConcurrency at once.
 */
const OPERATOR = 'operator-token-0123456789abcdef';
const EXPLAIN_ONLY = 'explain-only-token-0123456789ab';
const FOLLOWER = 'follower-read-token-0123456789a';
const HOST = { region_id: 1, cpus: 24, memory: 131072, disk: 1920, vmcount: 10, diskfree_actual: 1500, error_count: 0, state: '' };
const SERVERS = [
  { id: 1, name: 'nyc1-hv0001', ...HOST, memfree: 90000 },
  { id: 2, name: 'nyc1-hv0002', ...HOST, memfree: 60000 },
  { id: 3, name: 'nyc1-hv0003', ...HOST, memfree: 50000 },
];
const TOKENS = {
  operator: { sha256: adminTokenDigest(OPERATOR), scopes: ['explain', 'placements'] as const },
  support: { sha256: adminTokenDigest(EXPLAIN_ONLY), scopes: ['explain'] as const },
  followers: { sha256: adminTokenDigest(FOLLOWER), scopes: ['read'] as const },
};

/** A metrics endpoint that holds every request while `held`: a scrape (and so an explain) waits on it. */
async function startGate(upstream: string): Promise<{ url: string; hold(): void; release(): void; waiting(): number; close(): Promise<void> }> {
  let held = false;
  const queue: Array<() => void> = [];
  const server: Server = createServer((req, res) => {
    const answer = () => void fetch(upstream).then(async (r) => res.writeHead(r.status, { 'content-type': 'text/plain' }).end(await r.text()));
    if (held) queue.push(answer);
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
    hold: () => void (held = true),
    release() {
      held = false;
      for (const answer of queue.splice(0)) answer();
    },
    waiting: () => queue.length,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('POST /explain: a token, no other customer\'s placements, beside placement (issue 12 point 7)', () => {
  let t: TestDatabase;
  let metrics: HostMetricsServer;
  const started: SchedulerV2[] = [];

  async function replica(over: Partial<Parameters<typeof createSchedulerV2>[0]> = {}): Promise<{ v2: SchedulerV2; url: string }> {
    const v2 = createSchedulerV2({ db: t.service('scheduler_v2'), metricsEndpoints: [{ name: 'nyc1', url: metrics.url }], scrapeIntervalMs: 50, port: 0, tokens: TOKENS, maxStalenessMs: 600_000, ...over });
    started.push(v2);
    const { url } = await v2.start();
    return { v2, url: url! };
  }
  const explain = (url: string, token: string | undefined, body: unknown = { region: 'nyc1', size: '2gb', customer_id: 2, hosts: true }) =>
    fetch(`${url}/explain`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  const snapshot = async () => ({
    events: await t.db('events').orderBy('id').select('id', 'server_id', 'status', 'claimed_by'),
    decisions: (await t.db('placement_decisions').count({ n: '*' }).first())!.n,
    generations: await t.db('servers').orderBy('id').pluck('generation'),
  });

  beforeAll(async () => {
    t = await createTestDatabase('adv_explain');
    await t.db('regions').insert({ id: 1, slug: 'nyc1', name: 'New York 1' });
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert([
      { id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) },
      { id: 2, email: 'b@example.com', name: 'B', api_token_sha256: 'b'.repeat(64) },
    ]);
    await t.db('servers').insert(SERVERS);
    // Customer 2's droplet sits on the best host: an answer that ranks it last says where customer 2 is.
    await t.db('droplets').insert({ customer_id: 2, name: 'b-1', region_id: 1, size_id: 1, image_id: 1, server_id: 1, status: 'active' });
    metrics = await startHostMetricsServer(SERVERS.map((s) => metricsForServer(s, 'nyc1')));
  });

  afterAll(async () => {
    for (const v2 of started) await v2.close().catch(() => undefined);
    await metrics?.close();
    await t?.drop();
  });

  it('refuses a caller without a valid token with the explain scope; reads and writes nothing', async () => {
    const { url } = await replica({ mode: 'shadow' });
    const { url: bare } = await replica({ mode: 'shadow', tokens: undefined });
    const before = await snapshot();
    const cases: Array<[string, string | undefined, number, string]> = [
      [url, undefined, 401, 'SCHEDULER_ERR_UNAUTHORIZED'],
      [url, 'forged-token-0123456789abcdef', 401, 'SCHEDULER_ERR_UNAUTHORIZED'],
      // The digest the replica holds is not a token.
      [url, adminTokenDigest(OPERATOR), 401, 'SCHEDULER_ERR_UNAUTHORIZED'],
      [url, FOLLOWER, 403, 'SCHEDULER_ERR_FORBIDDEN'],
      // A replica started without tokens answers nobody.
      [bare, OPERATOR, 401, 'SCHEDULER_ERR_UNAUTHORIZED'],
    ];
    for (const [at, token, status, code] of cases) {
      const res = await explain(at, token);
      const body = (await res.json()) as { code: string; message: string; ranked?: unknown };
      expect({ status: res.status, code: body.code }, String(token)).toEqual({ status, code });
      expect(body.ranked).toBeUndefined();
      expect(JSON.stringify(body)).not.toContain('nyc1-hv');
    }
    // A decision names the host of a customer's droplet: placements scope only.
    const decision = await fetch(`${url}/decisions/1`, { headers: { authorization: `Bearer ${EXPLAIN_ONLY}` } });
    expect({ status: decision.status, code: ((await decision.json()) as { code: string }).code }).toEqual({ status: 403, code: 'SCHEDULER_ERR_FORBIDDEN' });
    expect(await snapshot()).toEqual(before);
  });

  it('hides which hosts hold another customer\'s droplets unless the token has the placements scope', async () => {
    const { url } = await replica({ mode: 'shadow' });
    const before = await snapshot();
    type Answer = { chosen: { name: string; fallback: boolean }; ranked: Array<{ name: string; fallback: boolean }>; hosts: Array<{ name: string; user_has_droplets?: boolean }>; customer_placements: string };
    const hidden = (await (await explain(url, EXPLAIN_ONLY)).json()) as Answer;
    expect(hidden.customer_placements).toBe('hidden');
    expect(hidden.chosen).toMatchObject({ name: 'nyc1-hv0001', fallback: false });
    expect(hidden.ranked.every((r) => !r.fallback)).toBe(true);
    expect(hidden.hosts.every((h) => !h.user_has_droplets)).toBe(true);
    // The same answer as for a customer nobody knows anything about.
    const anonymous = (await (await explain(url, EXPLAIN_ONLY, { region: 'nyc1', size: '2gb', hosts: true })).json()) as Answer;
    expect(hidden.ranked).toEqual(anonymous.ranked);

    const shown = (await (await explain(url, OPERATOR)).json()) as Answer;
    expect(shown.customer_placements).toBe('shown');
    expect(shown.chosen).toMatchObject({ name: 'nyc1-hv0002', fallback: false });
    expect(shown.ranked.find((r) => r.name === 'nyc1-hv0001')).toMatchObject({ fallback: true });
    expect(await snapshot()).toEqual(before);
  });

  it('a replica process takes its tokens as digests from SCHEDULER_V2_TOKENS, as the stack hands them', async () => {
    const port = await freePort();
    const replica = await spawnSchedulerProcess({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [{ name: 'nyc1', url: metrics.url }],
      replicaId: 'explain-process',
      port,
      tokens: { operator: { ...TOKENS.operator, expiresAt: new Date(Date.now() + 3_600_000) }, support: TOKENS.support },
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      expect((await explain(url, undefined)).status).toBe(401);
      expect((await explain(url, FOLLOWER)).status).toBe(401);
      const support = (await (await explain(url, EXPLAIN_ONLY)).json()) as { customer_placements: string };
      expect(support.customer_placements).toBe('hidden');
      const operator = (await (await explain(url, OPERATOR)).json()) as { customer_placements: string };
      expect(operator.customer_placements).toBe('shown');
    } finally {
      replica.child.kill('SIGTERM');
      await replica.exited;
    }
  });

  it('answers at most explainConcurrency at once: the next one is 429 with Retry-After, not queued', async () => {
    const gate = await startGate(metrics.url);
    try {
      const { url } = await replica({ mode: 'shadow', metricsEndpoints: [{ name: 'nyc1', url: gate.url }], scrapeTimeoutMs: 60_000, explainConcurrency: 1, explainRetryAfterSeconds: 3 });
      gate.hold();
      // The background scrape now hangs at the gate; once the last finished scrape is older than
      // scrapeIntervalMs, an explain's fresh-metrics wait joins it, holding the one slot.
      await waitFor(async () => gate.waiting() > 0, 10_000, 20);
      await new Promise((r) => setTimeout(r, 200));
      const first = explain(url, OPERATOR);
      await waitFor(async () => (await (await fetch(`${url}/metrics`)).text()).includes('scheduler_v2_explain_inflight 1'), 10_000, 20);
      const second = await explain(url, OPERATOR);
      expect(second.status).toBe(429);
      expect(second.headers.get('retry-after')).toBe('3');
      expect(((await second.json()) as { code: string }).code).toBe('SCHEDULER_ERR_EXPLAIN_BUSY');
      expect(await (await fetch(`${url}/metrics`)).text()).toContain('scheduler_v2_explain_busy_total 1');
      gate.release();
      expect((await first).status).toBe(200);
      // The slot is free again.
      expect((await explain(url, OPERATOR)).status).toBe(200);
    } finally {
      gate.release();
      await gate.close();
    }
  });

  it('answers while a placement batch is stuck: explain is not in the placement queue', async () => {
    const { v2, url } = await replica({ replicaId: 'beside-1', waitRetryMs: 100 });
    const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: 'a-1', region_id: 1, size_id: 1, image_id: 1 });
    // Every host row locked: the batch's commit (SELECT … FROM servers FOR UPDATE) waits, holding the placement queue.
    const lock = await t.db.transaction();
    try {
      await lock.raw('SELECT id FROM servers FOR UPDATE');
      const eventId = await insertEvent(t.db, { type: 'create', region_id: 1, droplet_id: Number(dropletId), customer_id: 1 });
      const waiting = async () => {
        const [rows] = (await t.db.raw("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'scheduler_v2' AND DB = ? AND INFO LIKE '%FROM servers s%FOR UPDATE%'", [t.name])) as [Array<{ n: number }>];
        return Number(rows[0]!.n) > 0;
      };
      await waitFor(waiting, 30_000, 20);
      const res = await explain(url, OPERATOR, { region: 'nyc1', size: '2gb' });
      expect(res.status).toBe(200);
      // The batch still waits on the lock: the explain did not wait for it.
      expect(await waiting()).toBe(true);
      expect((await t.db('events').where({ id: eventId }).first()).server_id).toBeNull();
      await lock.rollback();
      await waitFor(async () => (await t.db('events').where({ id: eventId }).first()).server_id !== null, 30_000, 50);
    } finally {
      if (!lock.isCompleted()) await lock.rollback();
      await v2.close();
    }
  });
});
