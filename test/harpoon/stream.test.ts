import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeedData } from '../../stack/seed/generate.ts';
import { createHarpoonClient, type Change } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { HARPOON_TOKEN, call, startHarpoon } from '../helpers/harpoon.ts';
import { openStream } from '../helpers/router.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

describe('Harpoon stream: push in order, filters, resume from a cursor', () => {
  let t: TestDatabase;
  let seed: SeedData;
  const started: Harpoon[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('harpoon_stream');
    seed = await seedWorld(t.db, { hypervisors: 6, regions: 2 });
  });
  afterAll(async () => {
    for (const h of started) await h.close();
    await t?.drop();
  });

  async function harpoonWith(options: Parameters<typeof startHarpoon>[1] = {}) {
    const h = await startHarpoon(t.service('harpoon'), options);
    started.push(h.harpoon);
    return h;
  }

  const logIds = async () => ((await t.db('event_log').orderBy('id').pluck('id')) as number[]).map(Number);

  it('pushes every change in cursor order, filtered by region and by unscheduled creates', async () => {
    const { url } = await harpoonWith();
    const client = createHarpoonClient({ urls: url, token: HARPOON_TOKEN });
    const [r0, r1] = [seed.regions[0]!, seed.regions[1]!];
    const all: Change[] = [];
    const region0: Change[] = [];
    const unscheduled: Change[] = [];
    const subs = [
      client.subscribe({ onChange: (c) => all.push(c) }),
      client.subscribe({ region: [r0.slug], onChange: (c) => region0.push(c) }),
      client.subscribe({ type: ['create'], unscheduled: true, onChange: (c) => unscheduled.push(c) }),
    ];
    await waitFor(async () => subs.every((s) => s.connected() && s.cursor() !== undefined));
    const host1 = seed.servers.find((s) => s.region_id === r1.id)!;
    const a = await client.createEvent({ type: 'create', region: r0.slug });
    const b = await client.createEvent({ type: 'reboot', region: r1.slug, server_id: host1.id });
    await client.setStatus(a.event.id, { server_id: seed.servers.find((s) => s.region_id === r0.id)!.id });
    await client.setStatus(b.event.id, { status: 'running' });
    await client.setStatus(b.event.id, { status: 'running' }); // a repeat: no change, nothing pushed
    await client.setStatus(b.event.id, { status: 'done' });
    await waitFor(async () => all.length === 5);
    expect(all.map((c) => [c.event.id, c.kind, c.event.status])).toEqual([
      [a.event.id, 'created', 'pending'],
      [b.event.id, 'created', 'pending'],
      [a.event.id, 'placed', 'pending'],
      [b.event.id, 'status', 'running'],
      [b.event.id, 'status', 'done'],
    ]);
    const cursors = all.map((c) => c.cursor);
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    expect(cursors).toEqual((await logIds()).slice(-5));
    expect(region0.map((c) => c.kind)).toEqual(['created', 'placed']);
    // The create while it was unplaced; its placement no longer matches "unscheduled".
    expect(unscheduled.map((c) => [c.event.id, c.kind])).toEqual([[a.event.id, 'created']]);
    for (const s of subs) s.close();
  });

  it('resumes from a cursor with exactly what was missed, from memory and from the log table', async () => {
    // A ring of 3 entries: a resume from further back must read event_log, page by page.
    const { url } = await harpoonWith({ ringSize: 3 });
    const client = createHarpoonClient({ urls: url, token: HARPOON_TOKEN });
    const region = seed.regions[0]!.slug;
    const start = (await logIds()).at(-1) ?? 0;
    const created: number[] = [];
    for (let i = 0; i < 12; i++) created.push((await client.createEvent({ type: 'create', region })).event.id);
    const got: Change[] = [];
    const sub = client.subscribe({ cursor: start, onChange: (c) => got.push(c) });
    await waitFor(async () => got.length === 12);
    expect(got.map((c) => c.event.id)).toEqual(created);
    sub.close();
    // Written while nobody listens; then resume from the last cursor seen.
    const more: number[] = [];
    for (let i = 0; i < 4; i++) more.push((await client.createEvent({ type: 'create', region })).event.id);
    const resumed: Change[] = [];
    const again = client.subscribe({ cursor: got.at(-1)!.cursor, onChange: (c) => resumed.push(c) });
    await waitFor(async () => resumed.length === 4);
    await new Promise((r) => setTimeout(r, 100));
    expect(resumed.map((c) => c.event.id)).toEqual(more);
    again.close();
    // Last-Event-ID (what EventSource sends on reconnect) wins over ?cursor=.
    const raw = await openStream(`${url}/v1/stream?cursor=0`, { authorization: `Bearer ${HARPOON_TOKEN}`, 'last-event-id': String(got.at(-1)!.cursor) });
    await waitFor(async () => raw.messages.filter((m) => m.event === 'message').length === 4);
    expect(raw.messages.filter((m) => m.event === 'message').map((m) => JSON.parse(m.data).event.id)).toEqual(more);
    raw.close();
  });

  it('resumes log rows of either payload format (the whole event, or only the fields that are not columns) as the same event', async () => {
    const { url } = await harpoonWith({ ringSize: 0 });
    const client = createHarpoonClient({ urls: url, token: HARPOON_TOKEN });
    const start = (await logIds()).at(-1) ?? 0;
    const host = seed.servers.find((s) => s.region_id === seed.regions[0]!.id)!;
    const made = await client.createEvent({ type: 'reboot', region: seed.regions[0]!.slug, server_id: host.id, message: 'compact', args: { size: '1gb' } });
    const [compact] = (await t.db('event_log').where('event_id', made.event.id).select('payload', 'kind', 'type', 'status', 'region_id', 'server_id', 'committed_at')) as Array<Record<string, unknown>>;
    // What the row holds: no column's field, no null.
    expect(Object.keys(JSON.parse(compact!.payload as string)).sort()).toEqual(['args', 'available_at', 'created_at', 'message', 'region']);
    // The same change as a row written before payloads were compact: the whole event in the payload.
    await t.db('event_log').insert({ ...compact, event_id: made.event.id, payload: JSON.stringify(made.event) });
    // A replica started now knows both rows (its head is the log's) and reads them from the table.
    const fresh = await harpoonWith({ ringSize: 0 });
    const got: Change[] = [];
    const sub = createHarpoonClient({ urls: fresh.url, token: HARPOON_TOKEN }).subscribe({ cursor: start, onChange: (c) => got.push(c) });
    await waitFor(async () => got.length === 2);
    sub.close();
    expect(got[0]!.event).toEqual(made.event);
    expect(got[1]!.event).toEqual(made.event);
  });

  it('refuses bad stream requests with a 4xx', async () => {
    const { url, harpoon } = await harpoonWith();
    expect(await call(url, 'GET', '/v1/stream?cursor=abc')).toMatchObject({ status: 400, json: { code: 'HARPOON_ERR_INVALID_QUERY' } });
    expect(await call(url, 'GET', `/v1/stream?cursor=${harpoon.head() + 1000}`)).toMatchObject({ status: 400, json: { code: 'HARPOON_ERR_CURSOR_AHEAD' } });
    expect(await call(url, 'GET', '/v1/stream?region=atlantis')).toMatchObject({ status: 422, json: { code: 'HARPOON_ERR_UNKNOWN_REGION' } });
    expect(await call(url, 'GET', '/v1/stream?type=explode')).toMatchObject({ status: 400 });
    expect(await call(url, 'GET', '/v1/stream', undefined, null)).toMatchObject({ status: 401 });
  });

  it('delivers a change written through one replica to the subscribers of another', async () => {
    const { freePort } = await import('../helpers/router.ts');
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await harpoonWith({ port: pa, peers: [`http://127.0.0.1:${pb}`] });
    const b = await harpoonWith({ port: pb, peers: [`http://127.0.0.1:${pa}`] });
    await waitFor(async () => /^harpoon_peers_connected 1$/m.test(await (await fetch(`${a.url}/metrics`)).text()));
    const onB: Change[] = [];
    const sub = createHarpoonClient({ urls: b.url, token: HARPOON_TOKEN }).subscribe({ onChange: (c) => onB.push(c) });
    await waitFor(async () => sub.connected());
    const viaA = createHarpoonClient({ urls: a.url, token: HARPOON_TOKEN });
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await viaA.createEvent({ type: 'create', region: seed.regions[1]!.slug })).event.id);
    await waitFor(async () => onB.length === 5);
    expect(onB.map((c) => c.event.id)).toEqual(ids);
    sub.close();
  });
});
