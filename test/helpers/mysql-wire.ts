import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** A TCP relay in front of MySQL that counts what clients send on the wire. */
export interface CountingRelay {
  port: number;
  /** COM_QUERY packets clients sent: one per round trip of the text protocol, however many statements each holds. */
  queries(): number;
  /** The MySQL users that logged in through the relay (from each handshake response). */
  users(): Set<string>;
  close(): Promise<void>;
}

const COM_QUERY = 0x03;

/**
 * Relays connections to `target`, notes who logs in and counts the COM_QUERY packets clients
 * send (a MySQL packet: 3-byte length, sequence id, payload; a command is
 * the first packet of its exchange, sequence 0).
 *
 * @example
 *   const relay = await startCountingRelay({ host: '127.0.0.1', port: 3306 });
 *   const db = { ...config, port: relay.port };
 */
export async function startCountingRelay(target: { host: string; port: number }): Promise<CountingRelay> {
  let queries = 0;
  const users = new Set<string>();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const length = pending.readUIntLE(0, 3);
        if (pending.length < 4 + length) break;
        if (pending[3] === 0 && length > 0 && pending[4] === COM_QUERY) queries++;
        // The handshake response (sequence 1): capabilities, max packet, charset, 23 bytes of filler, then the user.
        if (pending[3] === 1 && length > 32) users.add(pending.subarray(36, pending.indexOf(0, 36)).toString('utf8'));
        pending = pending.subarray(4 + length);
      }
      upstream.write(chunk);
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    queries: () => queries,
    users: () => users,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
