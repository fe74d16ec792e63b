import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createHarpoonClient, type Change } from '../../harpoon/client.ts';
import type { Harpoon } from '../../harpoon/create-harpoon.ts';
import { dropDatabase, prepareDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import type { DbConfig } from '../../lib/db/config.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { startThrowawayServer, throwawayAvailable, type ThrowawayServer } from '../../lib/db/throwaway-server.ts';
import { silentLogger } from '../../lib/logger.ts';
import type { SeedData } from '../../stack/seed/generate.ts';
import { TEST_PASSWORDS } from '../helpers/database.ts';
import { HARPOON_TOKEN, call, startHarpoon } from '../helpers/harpoon.ts';
import { seedWorld, waitFor } from '../helpers/seeded.ts';

/**
 * Galera sets auto_increment_increment to the cluster size: a multi-row
 * INSERT's ids then step by more than one, and any id computed as
 * insertId + k names another row. Harpoon must answer and stream the ids
 * the server gave.
 */
describe.skipIf(!throwawayAvailable())('Harpoon on a server with auto_increment_increment = 2', () => {
  let server: ThrowawayServer;
  let admin: DbConfig;
  let db: Knex;
  let seed: SeedData;
  let harpoon: Harpoon;
  let url: string;
  const name = uniqueDatabaseName('t_harpoon_autoinc');

  beforeAll(async () => {
    server = await startThrowawayServer({ maxConnections: 40, logger: silentLogger(), settings: { 'auto-increment-increment': 2, 'auto-increment-offset': 1 } });
    admin = await prepareDatabase(server.config, name, TEST_PASSWORDS);
    db = createKnex(admin, { poolMax: 2 });
    seed = await seedWorld(db, { hypervisors: 4, regions: 1 });
    ({ harpoon, url } = await startHarpoon(admin));
  });
  afterAll(async () => {
    await harpoon?.close();
    await db?.destroy();
    if (server) {
      await dropDatabase(server.config, name).catch(() => {});
      await server.stop();
    }
  });

  it('answers and streams, for every row of a batch, the id the server gave that row', async () => {
    const [[setting]] = (await db.raw('SELECT @@auto_increment_increment AS step')) as [[{ step: number }]];
    expect(Number(setting.step)).toBe(2);
    const region = seed.regions[0]!.slug;
    const host = seed.servers[0]!.id;
    const client = createHarpoonClient({ urls: url, token: HARPOON_TOKEN });
    const streamed: Change[] = [];
    const sub = client.subscribe({ onChange: (c) => streamed.push(c) });
    await waitFor(async () => sub.connected() && sub.cursor() !== undefined);

    // One request, one batch, one multi-row INSERT into events and one into event_log.
    const tags = ['alpha', 'bravo', 'charlie', 'delta'];
    const created = await call(url, 'POST', '/v1/events', { events: tags.map((tag) => ({ type: 'reboot', region, server_id: host, message: tag })) });
    expect(created.status).toBe(201);
    const answered = (created.json.events as Array<{ event: { id: number; message: string } }>).map((e) => e.event);
    expect(answered.map((e) => e.message)).toEqual(tags);
    // The server's step shows in the ids: they are not consecutive.
    for (let k = 1; k < answered.length; k++) expect(answered[k]!.id - answered[k - 1]!.id).toBe(2);
    const rows = (await db('events').whereIn('id', answered.map((e) => e.id)).select('id', 'message')) as Array<{ id: number; message: string }>;
    expect(new Map(rows.map((r) => [Number(r.id), r.message]))).toEqual(new Map(answered.map((e) => [e.id, e.message])));

    // A batch of status changes: each log entry must carry the id of its own row.
    const changed = await call(url, 'POST', '/v1/events/status', { changes: answered.map((e) => ({ id: e.id, status: 'running' })) });
    expect(changed.status).toBe(200);

    await waitFor(async () => streamed.length >= 8);
    sub.close();
    expect(streamed.map((c) => [c.kind, c.event.id, c.event.message])).toEqual([
      ...answered.map((e) => ['created', e.id, e.message]),
      ...answered.map((e) => ['status', e.id, e.message]),
    ]);
    // Each cursor is the event_log row that records exactly that change of exactly that event.
    const log = (await db('event_log').whereIn('id', streamed.map((c) => c.cursor)).select('id', 'event_id', 'kind')) as Array<{ id: number; event_id: number; kind: string }>;
    const byCursor = new Map(log.map((r) => [Number(r.id), [r.kind, Number(r.event_id)]]));
    expect(streamed.map((c) => byCursor.get(c.cursor))).toEqual(streamed.map((c) => [c.kind, c.event.id]));
  });
});
