import { spawn, type ChildProcess } from 'node:child_process';
import { StranglerError } from '../errors.ts';
import { childEnv } from './child-env.ts';

/** What is kept of a child's output for error messages: its last lines, not all of a long run. */
const OUTPUT_TAIL = 16 * 1024;

export interface ServiceProcessOptions {
  /** For messages: "harpoon replica a", "scheduler-v2 v2-1". */
  name: string;
  /** The service's main.ts (absolute path), run with `node --import tsx`. */
  main: string;
  /** The child's whole environment beside a short allow-list (lib/process/child-env.ts): nothing else of ours crosses. */
  env: Record<string, string>;
  /** Where the service listens once up; readiness is its `/readyz` answering 200. */
  url: string;
  /** Default 60 s: several services compiling at once on a busy 2-core machine take a while. */
  readyTimeoutMs?: number;
  /** The error code thrown when the process dies or is not ready in time. */
  errorCode: string;
}

export interface ServiceProcess {
  name: string;
  url: string;
  child: ChildProcess;
  pid: number;
  /** The exit code, or null when killed by a signal. */
  exited: Promise<number | null>;
  /** The last 16 KiB of its stdout and stderr. */
  output(): string;
}

/**
 * Runs a service's main.ts as its own process with an IPC channel as a
 * lifeline (the service's main exits on 'disconnect', so a supervisor
 * killed with SIGKILL leaves nothing behind holding ports and MySQL
 * connections), and resolves once it answers /readyz.
 *
 * @example
 *   const p = await spawnServiceProcess({ name: 'harpoon a', main, env: { PORT: '8100', … }, url: 'http://127.0.0.1:8100', errorCode: 'HARPOON_ERR_START' });
 *   p.child.kill('SIGKILL'); await p.exited;
 */
export async function spawnServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', options.main], {
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > OUTPUT_TAIL * 2) out = out.slice(-OUTPUT_TAIL);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  // A message to a child that is dying (chaos kills them, a supervisor restarts them) fails with EPIPE as an 'error'
  // event; unhandled, it ends this process. The child's exit is what counts, and `exited` reports it.
  child.on('error', (err) => keep(Buffer.from(`\n[${options.name}] ${err.message}\n`)));
  let gone = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => (gone = true));
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new StranglerError(options.errorCode, `${options.name} exited before it was ready: ${out.slice(-2000)}`);
    const res = await fetch(`${options.url}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    await res?.body?.cancel().catch(() => {});
    if (res?.status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new StranglerError(options.errorCode, `${options.name} was not ready at ${options.url} within ${timeoutMs} ms: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name: options.name, url: options.url, child, pid: child.pid ?? 0, exited, output: () => out.slice(-OUTPUT_TAIL) };
}
