import { createServer, type AddressInfo } from 'node:net';

/**
 * A port that was free a moment ago on `host`. For services that must keep
 * one port across restarts (a replacement process listens where the killed
 * one did, so clients reconnect to the same URL); there is a small race
 * with other programs, which a retry at listen time covers.
 *
 * @example
 *   const port = await freePort();           // on 127.0.0.1
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
