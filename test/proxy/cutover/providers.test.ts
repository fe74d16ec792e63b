import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MONITOR_USER } from '../../../lib/db/service-users.ts';
import { createCutoverAdmin, type CutoverAdmin } from '../../../proxy/cutover/admin.ts';
import type { GateReading } from '../../../proxy/cutover/gates.ts';
import { validatePlan } from '../../../proxy/cutover/plan.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';
import { insertEvent, seedWorld } from '../../helpers/seeded.ts';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.ts';

const TOKEN = 'providers-token-0123456789abcdef';

/**
 * The web JSON provider against a real HTTP server, and the gates no peer has — the database
 * invariants and the connection/polling budget — against the real MySQL server, read through
 * the monitor's least-privilege user.
 */
describe('web, invariant and budget gates', () => {
  let t: TestDatabase;
  let api: TestUpstream;
  let admin: CutoverAdmin;
  let stats: unknown = { queue: { depth: 7 }, items: [{ value: '12' }] };
  const byGate = (readings: GateReading[]) => Object.fromEntries(readings.map((r) => [r.gate, r]));

  beforeAll(async () => {
    t = await createTestDatabase('providers');
    await seedWorld(t.db, { hypervisors: 4, regions: 1 });
    api = await startUpstream('stats', (req, res) => {
      if (req.url === '/stats?window=1m') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
        return true;
      }
      if (req.url === '/html') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
        return true;
      }
      return false;
    });
    const plan = validatePlan({
      version: 1,
      features: {
        'event-delivery': {
          steps: [
            {
              name: 'all',
              mode: 'full',
              soak_seconds: 0,
              gates: [
                { name: 'depth', kind: 'web', service: 'stats', path: '/stats?window=1m', json_path: 'queue.depth', max: 10 },
                { name: 'first-item', kind: 'web', service: 'stats', path: '/stats?window=1m', json_path: '$.items[0].value', min: 20 },
                { name: 'missing', kind: 'web', service: 'stats', path: '/stats?window=1m', json_path: 'queue.age', max: 1 },
                { name: 'not-json', kind: 'web', service: 'stats', path: '/html', json_path: 'a', max: 1 },
                { name: 'lost', kind: 'invariant', check: 'lost_events', stuck_after_seconds: 1 },
                { name: 'doubled', kind: 'invariant', check: 'duplicate_executions' },
                { name: 'overcommitted', kind: 'invariant', check: 'overcommitted_hosts' },
                { name: 'orphans', kind: 'invariant', check: 'orphan_droplets', stuck_after_seconds: 1 },
                { name: 'proxy-connections', kind: 'budget', users: ['proxy'], max_connections: 2 },
                { name: 'polling', kind: 'budget', max_polling_queries_per_s: 1_000_000 },
              ],
            },
          ],
        },
      },
    });
    admin = createCutoverAdmin({
      db: t.service('proxy'),
      observer: t.service(MONITOR_USER),
      hostReserved: { memory: 0, disk: 0 },
      tokens: { operator: TOKEN },
      services: { stats: api.url },
      plan,
      watch: false,
    });
    await admin.start();
    await admin.controller.advance('event-delivery', 'operator');
  });

  afterAll(async () => {
    await admin?.close();
    await api?.close();
    await t?.drop();
  });

  it('reads a number at a JSON path of any endpoint: missing is no data, not JSON is an error', async () => {
    const r = byGate(await admin.controller.evaluate('event-delivery'));
    expect(r.depth).toMatchObject({ kind: 'web', verdict: 'pass', value: 7, threshold: { max: 10 } });
    expect(r['first-item']).toMatchObject({ verdict: 'fail', value: 12, threshold: { min: 20 } });
    expect(r['first-item']!.message).toBe('$.items[0].value of GET /stats = 12 < min 20');
    expect(r.missing).toMatchObject({ verdict: 'no-data', value: null });
    expect(r['not-json']).toMatchObject({ verdict: 'error' });
    expect(r['not-json']!.message).toMatch(/answered something that is not JSON/);
    stats = { queue: { depth: 'lots' } };
    const again = byGate(await admin.controller.evaluate('event-delivery'));
    expect(again.depth).toMatchObject({ verdict: 'error' });
    expect(again.depth!.message).toMatch(/queue.depth in GET \/stats is "lots", not a number/);
    stats = { queue: { depth: 7 }, items: [{ value: '25' }] };
  });

  it('counts the database invariants while the step runs: lost events, double executions, over-committed hosts, orphan droplets', async () => {
    const before = byGate(await admin.controller.evaluate('event-delivery'));
    for (const g of ['lost', 'doubled', 'overcommitted', 'orphans']) expect(before[g], g).toMatchObject({ kind: 'invariant', service: 'database', verdict: 'pass', value: 0 });

    const region = (await t.db('regions').first()) as { id: number };
    const server = (await t.db('servers').first()) as { id: number };
    // A create that nobody ran for 5 s is lost; an event executed twice is doubled.
    const stuck = await insertEvent(t.db, { type: 'create', region_id: region.id, server_id: server.id });
    await t.db('events').where({ id: stuck }).update({ created_at: t.db.raw('NOW(3) - INTERVAL 5 SECOND') });
    const twice = await insertEvent(t.db, { type: 'reboot', region_id: region.id, server_id: server.id, status: 'done' });
    await t.db('event_executions').insert([1, 2].map(() => ({ event_id: twice, server_id: server.id, received_at: t.db.raw('NOW(3)'), finished_at: t.db.raw('NOW(3)') })));
    // A fresh pending event is in flight, not lost.
    await insertEvent(t.db, { type: 'create', region_id: region.id, server_id: server.id });
    const after = byGate(await admin.controller.evaluate('event-delivery'));
    expect(after.lost).toMatchObject({ verdict: 'fail', value: 1, threshold: { max: 0 } });
    expect(after.lost!.message).toBe('lost events = 1 > max 0');
    expect(after.doubled).toMatchObject({ verdict: 'fail', value: 1 });
    expect(after.orphans).toMatchObject({ verdict: 'pass', value: 0 });

    const host = (await t.db('droplets').whereNotNull('server_id').whereNotIn('status', ['archived', 'error']).first()) as { server_id: number };
    await t.db('servers').where({ id: host.server_id }).update({ memory: 1 });
    expect(byGate(await admin.controller.evaluate('event-delivery')).overcommitted).toMatchObject({ verdict: 'fail', value: 1 });
  });

  it('holds the step to a connection and polling budget read from the server itself', async () => {
    const first = byGate(await admin.controller.evaluate('event-delivery'));
    // The admin's own pool holds 4 connections as the proxy user.
    expect(first['proxy-connections']).toMatchObject({ kind: 'budget', verdict: 'fail', threshold: { max: 2 } });
    expect(first['proxy-connections']!.value).toBeGreaterThanOrEqual(4);
    expect(first['proxy-connections']!.message).toMatch(/^\d+ connections of proxy > 2$/);
    const second = byGate(await admin.controller.evaluate('event-delivery'));
    expect(second.polling).toMatchObject({ verdict: 'pass', threshold: { max: 1_000_000 } });
    expect(second.polling!.value).toBeGreaterThan(0);
    expect(second.polling!.message).toMatch(/SELECTs\/s over \d+\.\ds <= 1000000/);
  });
});
