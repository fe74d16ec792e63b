import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject, describe, expect, it } from 'vitest';
import { formatMysqlUrl } from '../../../lib/db/config.ts';
import { openConnection } from '../../../lib/db/connection.ts';
import { provisionServer } from '../../../lib/db/provision.ts';
import { reapStaleServers } from '../../../lib/db/throwaway-server.ts';
import { silentLogger } from '../../../lib/logger.ts';

const logger = silentLogger();
const CLOSED_PORT = { host: '127.0.0.1', port: 1, user: 'root', password: '' };

describe('finding or starting a database server', () => {
  it('uses MYSQL_URL first when it is big enough', async () => {
    const admin = inject('dbAdmin');
    const server = await provisionServer({ logger, needConnections: 10, env: { MYSQL_URL: formatMysqlUrl(admin) }, found: CLOSED_PORT });
    expect(server.source).toBe('url');
    expect(server.admin.port).toBe(admin.port);
    expect(server.serverVersion).toMatch(/\d+\.\d+/);
    await server.release();
  });

  it('refuses a MYSQL_URL server that is too small, naming the setting', async () => {
    const admin = inject('dbAdmin');
    await expect(provisionServer({ logger, needConnections: 1_000_000, env: { MYSQL_URL: formatMysqlUrl(admin) } })).rejects.toMatchObject({
      code: 'DB_ERR_TOO_FEW_CONNECTIONS',
      message: expect.stringMatching(/max_connections=\d+ \(needs >= 1000000\)/),
    });
  });

  it('says which server did not answer when MYSQL_URL is wrong', async () => {
    await expect(provisionServer({ logger, needConnections: 1, env: { MYSQL_URL: 'mysql://root@127.0.0.1:1/' } })).rejects.toMatchObject({
      code: 'DB_ERR_UNREACHABLE',
    });
  });

  it('uses a found server when it allows enough connections', async () => {
    const server = await provisionServer({ logger, needConnections: 10, env: {}, found: inject('dbAdmin') });
    expect(server.source).toBe('found');
    await server.release();
  });

  it('starts a throwaway server with the limits the run needs when none is found, and removes it afterwards', async () => {
    const server = await provisionServer({ logger, needConnections: 300, env: {}, found: CLOSED_PORT });
    expect(server.source).toBe('throwaway');
    expect(server.maxConnections).toBeGreaterThanOrEqual(300);
    const conn = await openConnection(server.admin);
    const [rows] = await conn.query('SELECT @@thread_handling AS th, @@open_files_limit AS ofl');
    await conn.end();
    expect(rows).toMatchObject([{ th: 'pool-of-threads' }]);
    // The pooled server's control port: a thread per connection there (MariaDB's extra_port), for the cutover's sessions.
    expect(server.controlPort).toBeGreaterThan(0);
    expect(server.controlPort).not.toBe(server.admin.port);
    const control = await openConnection({ ...server.admin, port: server.controlPort! });
    const [extra] = await control.query('SELECT @@extra_port AS port');
    await control.end();
    expect(extra).toMatchObject([{ port: server.controlPort }]);
    // A server named by MYSQL_URL is asked for its extra_port: a user's own pooled MariaDB gets the same treatment.
    const named = await provisionServer({ logger, needConnections: 10, env: { MYSQL_URL: formatMysqlUrl(server.admin) }, found: CLOSED_PORT });
    expect(named).toMatchObject({ source: 'url', controlPort: server.controlPort });
    const pid = server.pid!;
    expect(() => process.kill(pid, 0)).not.toThrow();
    await server.release();
    expect(() => process.kill(pid, 0)).toThrow();
    await expect(openConnection(server.admin, { connectTimeoutMs: 500 })).rejects.toThrow();
  });

  it('falls back to a throwaway server when the found one is too small', async () => {
    const found = inject('dbAdmin');
    const conn = await openConnection(found);
    const [rows] = (await conn.query('SELECT @@max_connections AS m')) as unknown as [[{ m: number }]];
    await conn.end();
    const server = await provisionServer({ logger, needConnections: Number(rows[0].m) + 1, env: {}, found });
    try {
      expect(server.source).toBe('throwaway');
      expect(server.admin.port).not.toBe(found.port);
    } finally {
      await server.release();
    }
  });

  it('reaps throwaway directories whose owner process died', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strangler-mariadb-'));
    // PID 2^22 + 1 is above Linux's pid_max ceiling: never alive.
    await writeFile(join(dir, 'owner.json'), JSON.stringify({ ownerPid: 4194305 }));
    expect(await reapStaleServers(logger)).toBeGreaterThanOrEqual(1);
    expect(existsSync(dir)).toBe(false);
  });
});
