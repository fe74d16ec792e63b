import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './seeded.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** A service running as a real child process (so a test can kill -9 it). */
export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Runs `node --import tsx <entry>` from the repository with `env` added to
 * the test's environment, and waits until it answers `/readyz` on
 * 127.0.0.1:`port` (killing it if it exits or never gets ready).
 *
 * @example
 *   const p = await startServiceProcess('legacy/cloud/main.ts', { CLOUD_MYSQL_URL: url, PORT: '8080' }, 8080);
 */
export async function startServiceProcess(entry: string, env: Record<string, string>, port: number): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO,
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    await waitFor(async () => {
      if (gone) throw new Error(`${entry} exited: ${out}`);
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      return res?.status === 200;
    }, 20_000, 50);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, url, output: () => out, exited };
}
