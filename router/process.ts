import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { StranglerError } from '../lib/errors.ts';
import { ROUTER_ERRORS } from './protocol.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
/** What is kept of a child's output for error messages: its last lines, not all of a long run. */
const OUTPUT_TAIL = 16 * 1024;

export interface RouterProcessOptions {
  /** The region's `event_router` MySQL user on the run's database. */
  db: DbConfig;
  region: string;
  /** A concrete port: a replacement process must listen where the old one did. */
  port: number;
  host?: string;
  /** Secret the hypervisor tokens derive from. */
  secret: string;
  pollIntervalMs?: number;
  poolSize?: number;
  logLevel?: string;
  /** How long to wait for /readyz (default 60 s: ten routers compiling at once on a busy 2-core machine take a while). */
  readyTimeoutMs?: number;
}

export interface RouterProcess {
  region: string;
  url: string;
  child: ChildProcess;
  pid: number;
  /** The exit code, or null when killed by a signal. */
  exited: Promise<number | null>;
  /** The last 16 KiB of its stdout and stderr, for failure messages. */
  output(): string;
}

/**
 * Runs one Event Router as its own process (`node --import tsx router/main.ts`)
 * and resolves once it answers `/readyz`: a router that can be killed with
 * SIGKILL without taking anything else down, as in production.
 *
 * @example
 *   const r = await spawnRouterProcess({ db: routerDb, region: 'nyc1', port: 8091, secret });
 *   … r.child.kill('SIGTERM'); await r.exited;
 */
export async function spawnRouterProcess(options: RouterProcessOptions): Promise<RouterProcess> {
  const host = options.host ?? '127.0.0.1';
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...process.env,
      ROUTER_MYSQL_URL: formatMysqlUrl(options.db),
      ROUTER_REGION: options.region,
      PORT: String(options.port),
      HOST: host,
      ROUTER_POLL_MS: String(options.pollIntervalMs ?? 1000),
      ...(options.poolSize !== undefined ? { ROUTER_POOL_SIZE: String(options.poolSize) } : {}),
      STRANGLER_DB_SECRET: options.secret,
      LOG_LEVEL: options.logLevel ?? process.env.LOG_LEVEL ?? 'warn',
    },
    // The IPC channel is only a lifeline: router/main.ts exits when it closes, so a supervisor killed
    // with SIGKILL leaves no router behind holding its port and its MySQL connections.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > OUTPUT_TAIL * 2) out = out.slice(-OUTPUT_TAIL);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let gone = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => (gone = true));
  const url = `http://${host}:${options.port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (gone) throw new StranglerError(ROUTER_ERRORS.START, `event router for ${options.region} exited before it was ready: ${out.slice(-2000)}`);
    const res = await fetch(`${url}/readyz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new StranglerError(ROUTER_ERRORS.START, `event router for ${options.region} was not ready at ${url} within ${options.readyTimeoutMs ?? 60_000} ms: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { region: options.region, url, child, pid: child.pid ?? 0, exited, output: () => out.slice(-OUTPUT_TAIL) };
}
