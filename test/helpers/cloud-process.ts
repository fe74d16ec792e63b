import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatMysqlUrl, type DbConfig } from '../../lib/db/config.ts';
import { waitFor } from './seeded.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface CloudProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

/** Runs `node --import tsx legacy/cloud/main.ts` as a real child process (for kill -9) and waits for /readyz. */
export async function startCloudProcess(options: { db: DbConfig; port: number; harpoon?: { urls: string[]; token: string }; relayWaitMs?: number }): Promise<CloudProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'legacy/cloud/main.ts'], {
    cwd: REPO,
    env: {
      ...process.env,
      CLOUD_MYSQL_URL: formatMysqlUrl(options.db),
      PORT: String(options.port),
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      ...(options.harpoon ? { CLOUD_HARPOON_URLS: options.harpoon.urls.join(','), CLOUD_HARPOON_TOKEN: options.harpoon.token } : {}),
      ...(options.relayWaitMs === undefined ? {} : { CLOUD_RELAY_WAIT_MS: String(options.relayWaitMs) }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${options.port}`;
  try {
    await waitFor(async () => {
      if (gone) throw new Error(`cloud process exited: ${out}`);
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      return res?.status === 200;
    }, 20_000, 50);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, url, output: () => out, exited };
}
