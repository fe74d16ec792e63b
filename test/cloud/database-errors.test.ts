import { createConnection, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, inject, it } from 'vitest';
import { toCloudError } from '../../cloud/errors.ts';
import { openConnection } from '../../lib/db/connection.ts';

/** The error a write gets on a socket whose server went away, made by a real server that hangs up. */
async function writeToHungUpSocket(): Promise<Error> {
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise<Error>((resolve) => {
      const socket = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
      socket.on('error', resolve);
      socket.on('end', () => {
        setTimeout(() => socket.write('SELECT 1', (err) => err && resolve(err)), 20);
      });
      socket.resume();
    });
  } finally {
    server.close();
  }
}

/**
 * Found by `npm run chaos`: during a MySQL restart, a query on a pooled
 * connection the server had just dropped failed with EPIPE ("This socket
 * has been ended by the other party") and Cloud answered 500 as if it had
 * a bug; it is the database's state, a 503 the client may retry.
 */
describe('Cloud: a dropped database connection is 503, not 500', () => {
  it('maps EPIPE to CLOUD_ERR_DATABASE_UNAVAILABLE', async () => {
    const err = await writeToHungUpSocket();
    expect((err as NodeJS.ErrnoException).code).toBe('EPIPE');
    const mapped = toCloudError(err);
    expect(mapped.code).toBe('CLOUD_ERR_DATABASE_UNAVAILABLE');
    expect(mapped.status).toBe(503);
  });

  it('maps a command on a connection already closed (no code, mysql2 marks it fatal) to CLOUD_ERR_DATABASE_UNAVAILABLE', async () => {
    // Found by `npm run chaos` (seeds 1 and 2, 2026-12-07): a transaction's ROLLBACK after MySQL's crash-restart answered 500.
    const conn = await openConnection(inject('dbAdmin'));
    conn.destroy();
    const err = await conn.query('ROLLBACK').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ message: "Can't add new command when connection is in closed state", fatal: true });
    const mapped = toCloudError(err);
    expect(mapped.code).toBe('CLOUD_ERR_DATABASE_UNAVAILABLE');
    expect(mapped.status).toBe(503);
    expect(toCloudError(new Error('a bug')).status).toBe(500);
  });
});
