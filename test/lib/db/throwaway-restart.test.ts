import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { startThrowawayServer, throwawayAvailable, type ThrowawayServer } from '../../../lib/db/throwaway-server.ts';
import { silentLogger } from '../../../lib/logger.ts';
import { alive } from '../../helpers/process.ts';

/**
 * What `npm run chaos` does to MySQL: kill -9 of the server and a start
 * on the same port and data directory. Committed rows survive (InnoDB
 * recovery), old connections are dead, new ones work.
 */
describe.skipIf(!throwawayAvailable())('throwaway server: crash and restart', () => {
  let server: ThrowawayServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('comes back on the same port with the committed data; old connections fail, new ones work', async () => {
    server = await startThrowawayServer({ maxConnections: 50, logger: silentLogger() });
    const before = await mysql.createConnection(server.config);
    await before.query('CREATE DATABASE chaos_restart');
    await before.query('CREATE TABLE chaos_restart.t (id INT PRIMARY KEY) ENGINE=InnoDB');
    await before.query('INSERT INTO chaos_restart.t VALUES (1), (2), (3)');
    before.on('error', () => {});
    const oldPid = server.pid;
    const { killedPid, pid } = await server.crashAndRestart();
    expect(killedPid).toBe(oldPid);
    expect(pid).not.toBe(oldPid);
    expect(server.pid).toBe(pid);
    expect(alive(oldPid)).toBe(false);
    await expect(before.query('SELECT 1')).rejects.toThrow();
    const after = await mysql.createConnection(server.config);
    const [rows] = await after.query('SELECT COUNT(*) AS n FROM chaos_restart.t');
    expect((rows as Array<{ n: number }>)[0]!.n).toBe(3);
    await after.end();
    before.destroy();
    await server.stop();
    expect(alive(pid)).toBe(false);
  }, 120_000);
});
