/**
 * npm run bench:connections -- --max 15000 --step 2500 --thread-handling one-thread-per-connection
 *
 * How many client connections a throwaway MariaDB holds on this machine, by
 * thread handling: opens connections in steps up to --max, each step read
 * back from the server (Threads_connected, Threads_created) and from /proc
 * (mariadbd's resident memory and its OS thread count), with the time the
 * step took and one `SELECT 1` round trip over every connection. Stops at
 * the first step that fails and says why. Prints one JSON object.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import type { Connection } from 'mysql2/promise';
import { openConnection } from '../lib/db/connection.ts';
import { startThrowawayServer, type ThreadHandling } from '../lib/db/throwaway-server.ts';
import { silentLogger } from '../lib/logger.ts';
import { readProcessMemory } from '../demo/server-load.ts';

const { values } = parseArgs({
  options: {
    max: { type: 'string', default: '15000' },
    step: { type: 'string', default: '2500' },
    'thread-handling': { type: 'string', default: 'one-thread-per-connection' },
  },
});
const max = Number(values.max);
const step = Number(values.step);
const handling = values['thread-handling'] as ThreadHandling;
if (!Number.isInteger(max) || max <= 0 || !Number.isInteger(step) || step <= 0) {
  process.stderr.write('bench:connections: --max and --step must be positive integers\n');
  process.exit(2);
}
if (handling !== 'one-thread-per-connection' && handling !== 'pool-of-threads') {
  process.stderr.write('bench:connections: --thread-handling must be one-thread-per-connection or pool-of-threads\n');
  process.exit(2);
}

async function procFacts(pid: number): Promise<{ rss_mb: number; os_threads: number }> {
  const { rssBytes, threads } = await readProcessMemory(pid);
  return { rss_mb: Math.round(rssBytes / 1048576), os_threads: threads };
}

const server = await startThrowawayServer({ maxConnections: max + 50, logger: silentLogger(), threadHandling: handling });
const conns: Connection[] = [];
const steps: Array<Record<string, number | string>> = [];
let stoppedBecause: string | undefined;
const started = Date.now();
try {
  const probe = await openConnection(server.config);
  const status = async () => {
    const [rows] = (await probe.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Threads_created', 'Threads_running')")) as unknown as [
      Array<{ Variable_name: string; Value: string }>,
    ];
    return Object.fromEntries(rows.map((r) => [r.Variable_name.toLowerCase(), Number(r.Value)]));
  };
  for (let target = Math.min(step, max); target <= max; target = target === max ? max + 1 : Math.min(max, target + step)) {
    const stepStarted = Date.now();
    try {
      while (conns.length < target) {
        const batch = Math.min(200, target - conns.length);
        conns.push(...(await Promise.all(Array.from({ length: batch }, () => openConnection(server.config, { connectTimeoutMs: 60_000 })))));
      }
      const openS = (Date.now() - stepStarted) / 1000;
      const roundTrip = Date.now();
      for (let i = 0; i < conns.length; i += 500) await Promise.all(conns.slice(i, i + 500).map((c) => c.query('SELECT 1')));
      steps.push({
        connections: conns.length,
        open_s: Math.round(openS * 10) / 10,
        select1_all_s: Math.round((Date.now() - roundTrip) / 100) / 10,
        ...(await status()),
        ...(await procFacts(server.pid)),
        load_average_1m: Math.round(loadavg()[0]! * 10) / 10,
      });
      process.stderr.write(`${JSON.stringify(steps.at(-1))}\n`);
    } catch (err) {
      stoppedBecause = `at ${conns.length} connections, opening toward ${target}: ${(err as Error).message}`;
      break;
    }
  }
  await probe.end().catch(() => {});
} finally {
  await Promise.all(conns.map((c) => c.destroy()));
  await server.stop();
}
process.stdout.write(
  JSON.stringify(
    {
      bench: 'connections',
      settings: { max, step, thread_handling: handling },
      held: steps.at(-1)?.connections ?? 0,
      stopped_because: stoppedBecause ?? null,
      steps,
      seconds: Math.round((Date.now() - started) / 1000),
      machine: { cpus: cpus().length, load_average: loadavg().map((l) => Math.round(l * 100) / 100), total_memory_mb: Math.round(totalmem() / 1048576) },
    },
    null,
    2,
  ) + '\n',
);
