import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_RESERVED } from '../../domain/catalog.ts';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { checkInvariants } from '../../lib/invariants.ts';
import { createSchedulerV2, type SchedulerV2 } from '../../scheduler/create-scheduler-v2.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { metricsForServer, startHostMetricsServer, type HostMetricsServer } from '../helpers/host-metrics.ts';
import { insertEvent, waitFor } from '../helpers/seeded.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LEASE_MS = 2000;
const EVENTS = 20;

/**
 * A replica process is killed with SIGKILL while it holds leases on claimed
 * events (it is made to stall right after claiming). Another replica must
 * place every one of them, once, as soon as the leases expire.
 */
describe('Scheduler V2: kill -9 of a replica holding claimed events', () => {
  let t: TestDatabase;
  let metrics: HostMetricsServer;
  let child: ChildProcess | undefined;
  let survivor: SchedulerV2 | undefined;
  let stderr = '';

  beforeAll(async () => {
    t = await createTestDatabase('scheduler_v2_kill');
    await t.db('regions').insert({ id: 1, slug: 'nyc1', name: 'New York 1' });
    await t.db('sizes').insert({ id: 1, slug: '2gb', memory: 2048, vcpus: 2, disk: 40, price_monthly: 20 });
    await t.db('images').insert({ id: 1, slug: 'debian-8-x64', name: 'Debian', distribution: 'Debian', min_disk_size: 20 });
    await t.db('customers').insert({ id: 1, email: 'a@example.com', name: 'A', api_token_sha256: 'a'.repeat(64) });
    const servers = Array.from({ length: 25 }, (_, i) => ({
      id: i + 1,
      name: `nyc1-hv${String(i + 1).padStart(4, '0')}`,
      region_id: 1,
      cpus: 24,
      memory: 131072,
      disk: 1920,
      vmcount: 0,
      memfree: 131072 - HOST_RESERVED.memory - i * 1024,
      diskfree_actual: 1870,
      error_count: 0,
      state: '',
    }));
    await t.db('servers').insert(servers);
    metrics = await startHostMetricsServer(servers.map((s) => metricsForServer(s, 'nyc1')));
    for (let i = 0; i < EVENTS; i++) {
      const [dropletId] = await t.db('droplets').insert({ customer_id: 1, name: `d${i}`, region_id: 1, size_id: 1, image_id: 1 });
      await insertEvent(t.db, { type: 'create', region_id: 1, droplet_id: Number(dropletId), customer_id: 1 });
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await survivor?.close();
    await metrics?.close();
    await t?.drop();
  });

  it('another replica places every event the dead one had claimed, once, within seconds of the lease expiring', async () => {
    child = spawn(process.execPath, ['--import', 'tsx', 'scheduler/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        SCHEDULER_V2_MYSQL_URL: formatMysqlUrl(t.service('scheduler_v2')),
        SCHEDULER_V2_METRICS_URLS: `nyc1=${metrics.url}`,
        SCHEDULER_V2_REPLICA_ID: 'doomed',
        SCHEDULER_V2_LEASE_MS: String(LEASE_MS),
        SCHEDULER_V2_BATCH_SIZE: '50',
        // Stalls forever after claiming: the kill lands while it holds every lease.
        SCHEDULER_V2_FAULT_PAUSE_AFTER_CLAIM_MS: '600000',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child!.once('exit', (_code, signal) => resolve(signal)));

    await waitFor(async () => {
      if (child!.exitCode !== null) throw new Error(`the replica exited early: ${stderr}`);
      const row = await t.db('events').where({ claimed_by: 'doomed' }).whereNull('server_id').count({ n: '*' }).first();
      return Number(row!.n) === EVENTS;
    }, 30_000);
    const { expires } = (await t.db('events').where({ claimed_by: 'doomed' }).max({ expires: 'claim_expires_at' }).first()) as { expires: string };

    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const killedAt = Date.now();

    survivor = createSchedulerV2({
      db: t.service('scheduler_v2'),
      metricsEndpoints: [{ name: 'nyc1', url: metrics.url }],
      replicaId: 'survivor',
      leaseMs: LEASE_MS,
      pollIntervalMs: 100,
    });
    await survivor.start();
    // While the dead replica's leases run, its events are nobody else's.
    const early = await t.db('events').whereNotNull('server_id').count({ n: '*' }).first();
    if (Date.now() - killedAt < LEASE_MS / 2) expect(Number(early!.n)).toBe(0);

    await waitFor(async () => {
      const row = await t.db('events').whereNotNull('server_id').count({ n: '*' }).first();
      return Number(row!.n) === EVENTS;
    }, 15_000, 50);
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(LEASE_MS + 5000);

    const events = await t.db('events').orderBy('id').select('id', 'server_id', 'claimed_by', 'status', 'droplet_id');
    expect(events.every((e) => e.claimed_by === 'survivor' && e.status === 'pending' && e.server_id !== null)).toBe(true);
    // Once: one placed decision per event, all by the survivor, none before the leases expired (database clock).
    const decisions = await t.db('placement_decisions').orderBy('event_id').select('event_id', 'replica', 'outcome', 'created_at');
    expect(decisions).toHaveLength(EVENTS);
    expect(new Set(decisions.map((d) => d.event_id)).size).toBe(EVENTS);
    expect(decisions.every((d) => d.replica === 'survivor' && d.outcome === 'placed' && d.created_at >= expires)).toBe(true);
    // One create per host (V1's busy rule), and droplets where their events say.
    expect(new Set(events.map((e) => e.server_id)).size).toBe(EVENTS);
    const droplets = await t.db('droplets').orderBy('id').pluck('server_id');
    expect(droplets).toEqual(events.map((e) => e.server_id));
    expect((await checkInvariants(t.db, { hostReserved: HOST_RESERVED })).overcommitted_hosts).toBe(0);
    expect(await survivor.registry.metrics()).toContain(`scheduler_v2_placements_total{policy="v1-compatible"} ${EVENTS}`);
  }, 60_000);
});
