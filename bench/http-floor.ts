/**
 * The floor under Harpoon's one-event-per-request row: a bare node:http
 * server in its own process that reads each POST's JSON body and answers
 * 201 with a created event's shape, touching no database. Driven by the
 * same client as the Harpoon rows (bench/harpoon-ingest.ts), it says what
 * Node's HTTP layer alone costs per request on this machine in the same
 * run: the part of Harpoon's CPU per request no change inside Harpoon can
 * remove, and the most requests per second the client and server
 * processes leave room for.
 *
 *   const floor = await startHttpFloor();   // { url, child }; floor.child.kill() ends it
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { childEnv } from '../lib/process/child-env.ts';

const SELF = fileURLToPath(import.meta.url);

function serve(): void {
  let id = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      const now = new Date().toISOString();
      const payload = JSON.stringify({
        event: { id: ++id, type: body.type, status: 'pending', region: body.region, region_id: 1, server_id: null, droplet_id: null, customer_id: null, args: null, message: null, key: null, created_at: now, available_at: null, started_at: null, finished_at: null },
        duplicate: false,
      });
      res.writeHead(201, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
}

export async function startHttpFloor(): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(SELF, ['--http-floor-child'], { execArgv: ['--import', 'tsx'], env: childEnv({}), stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const { port } = await new Promise<{ port: number }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { port: number }));
    child.once('exit', (code) => reject(new Error(`the HTTP floor server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

if (process.argv.includes('--http-floor-child')) serve();
