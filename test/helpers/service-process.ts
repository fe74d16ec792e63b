import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnServiceProcess } from '../../lib/process/service-process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** A service running as a real child process (so a test can kill -9 it). */
export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Runs `node --import tsx <entry>` (a path from the repository's root) with
 * `env` added to the test's environment, and waits until it answers
 * `/readyz` on 127.0.0.1:`port` (killing it if it exits or never gets
 * ready): lib/process/service-process.ts, as the stack spawns services.
 *
 * @example
 *   const p = await startServiceProcess('cloud/main.ts', { CLOUD_MYSQL_URL: url, PORT: '8080' }, 8080);
 */
export async function startServiceProcess(entry: string, env: Record<string, string>, port: number): Promise<ServiceProcess> {
  const p = await spawnServiceProcess({
    name: entry,
    main: `${REPO}${entry}`,
    url: `http://127.0.0.1:${port}`,
    env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env },
    errorCode: 'TEST_ERR_SERVICE_START',
    readyTimeoutMs: 20_000,
  });
  return { child: p.child, url: p.url, output: p.output, exited: p.exited };
}
