import { startThrowawayServer } from './lib/db/throwaway-server.ts';
import { prepareDatabase } from './lib/db/database.ts';
import { createKnex } from './lib/db/knex.ts';
import { generateSeed } from './stack/seed/generate.ts';
import { insertSeed } from './stack/seed/insert.ts';
import { openConnection } from './lib/db/connection.ts';
import { GOD_QUERY_2016 } from './legacy/dobe/god-query-2016.ts';
import { silentLogger } from './lib/logger.ts';
import { loadStackSecrets } from './lib/secrets/stack-secrets.ts';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
const strip = process.argv[2];
const sql = strip ? GOD_QUERY_2016.split('\n').filter((l, i, all) => true).join('\n').replace(new RegExp(strip, 's'), '') : GOD_QUERY_2016;
const server = await startThrowawayServer({ maxConnections: 100, logger: silentLogger(), threadHandling: 'one-thread-per-connection' });
const errLog = join(dirname(server.dataDir), 'error.log');
try {
  const config = await prepareDatabase(server.config, 'crash_db', loadStackSecrets(process.env).secrets.db);
  const root = { ...server.config, database: 'crash_db' };
  const db = createKnex(root, { poolMin: 1, poolMax: 4 });
  await insertSeed(db, generateSeed({ hypervisors: 200, regions: 2, seed: 1 }));
  void config;
  const conns = await Promise.all(Array.from({ length: 8 }, () => openConnection(root)));
  const end = Date.now() + 40_000;
  let n = 0; let w = 0;
  const writer = (async () => {
    while (Date.now() < end) {
      const [d] = await db('droplets').select('id', 'server_id', 'region_id', 'customer_id').orderByRaw('RAND()').limit(1);
      const [id] = await db('events').insert({ region_id: d.region_id, type: 'reboot', server_id: d.server_id, status: 'pending', available_at: db.raw('NOW(3)'), droplet_id: d.id, customer_id: d.customer_id });
      await db('events').where({ id, status: 'pending' }).update({ status: 'running', started_at: db.raw('NOW(3)') });
      await db('event_executions').insert({ event_id: id, server_id: d.server_id, received_at: db.raw('NOW(3)'), finished_at: db.raw('NOW(3)') });
      await db('events').where({ id }).update({ status: 'done', finished_at: db.raw('NOW(3)') });
      await db('servers').where({ id: d.server_id }).update({ vmcount: db.raw('vmcount') });
      w++;
    }
  })();
  await Promise.all([writer, ...conns.map(async (c) => {
    while (Date.now() < end) {
      const id = 1 + Math.floor(Math.random() * 200);
      await c.query(sql, [id, Math.random() < 0.3 ? 'running' : 'pending', id, id]);
      n++;
    }
  })]);
  console.log('OK', n, w);
  await db.destroy();
} catch (e) {
  console.log('FAIL', (e as Error).message);
  const log = await readFile(errLog, 'utf8').catch(() => '');
  const i = log.indexOf('got signal');
  console.log(log.slice(Math.max(0, i - 200), i + 6000));
} finally { await server.stop(); }
