import { spawn } from 'node:child_process';
import { connect, type Socket as NetSocket } from 'node:net';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parsePromText, sumSamples } from '../../lib/metrics/prom-text.ts';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Answers a request; return false to fall through to the default echo. */
export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: string) => boolean | void | Promise<boolean | void>;

export interface TestUpstream {
  name: string;
  url: string;
  port: number;
  /** Every request received, /healthz excluded. */
  requests: ReceivedRequest[];
  /** Makes /healthz answer 503 (false) or 200 (true). */
  setHealthy(healthy: boolean): void;
  /** Replaces the request handler (the default echoes the request as JSON). */
  handle(handler: UpstreamHandler | undefined): void;
  /** Dies like a killed process: stops listening and cuts every connection (new ones are refused). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real HTTP upstream on a free port. The default answer is JSON:
 * `{ served_by, method, path, request_id, body }`.
 */
export async function startUpstream(name: string, handler?: UpstreamHandler): Promise<TestUpstream> {
  let healthy = true;
  let custom = handler;
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(async (req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: healthy ? 'ok' : 'down', service: name }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    if (custom && (await custom(req, res, body)) !== false) return;
    const payload = JSON.stringify({ served_by: name, method: req.method, path: req.url, request_id: req.headers['x-request-id'] ?? null, body });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(payload);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closed;
  };
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    setHealthy: (h) => {
      healthy = h;
    },
    handle: (h) => {
      custom = h;
    },
    kill: close,
    close,
  };
}

/**
 * An address whose connections never complete: a process listening with a
 * backlog of 1 whose event loop is blocked (it never accepts), the backlog
 * filled, so the kernel drops further SYNs and a connect just waits.
 */
export async function startBlackhole(): Promise<{ url: string; close(): void }> {
  const script =
    "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);" +
    'setTimeout(()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0),50)})';
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`blackhole exited with ${code}`)));
  });
  await new Promise((r) => setTimeout(r, 200));
  const fillers: NetSocket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Parsed JSON, or undefined when the body is empty or not JSON. */
  body: any;
}

/**
 * One request over a fresh connection (no keep-alive pool, so each request
 * may land on another cluster worker), with the whole answer read.
 */
export function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined && !options.chunked) headers['content-length'] ??= String(Buffer.byteLength(options.body));
    const req = request(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** Polls `check` until it returns true (or throws when `ms` pass). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The value of a metric in Prometheus text (the sum over the series that carry `labels`), or undefined
 * when no series matches. Read with the tree's one parser, lib/metrics/prom-text.ts.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return sumSamples(parsePromText(text).samples, name, labels);
}
