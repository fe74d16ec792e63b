import type { ServerDeath } from '../lib/db/throwaway-server.ts';

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GB`;

/**
 * What to tell a person whose demo lost its database mid-run (DEMO_ERR_DATABASE_DIED): how it died,
 * the most memory it was seen holding against the machine's, and what to run instead when the 2016
 * legacy was the cause.
 *
 * @example
 *   databaseDeathMessage({ pid: 7, code: null, signal: 'SIGKILL', peakRssBytes: 21e9 },
 *     { hypervisors: 15000, threadHandling: 'one-thread-per-connection', godQuery: '2016', totalMemBytes: 24e9 })
 *   // "the demo's database server (pid 7) was killed by SIGKILL after holding up to 19.6 GB of this machine's 22.4 GB: …"
 */
export function databaseDeathMessage(
  death: ServerDeath,
  run: { hypervisors: number; threadHandling: string; godQuery: string; totalMemBytes: number },
): string {
  const how = death.signal ? `was killed by ${death.signal}` : `exited with code ${death.code}`;
  const memory = death.peakRssBytes !== null ? ` after holding up to ${gb(death.peakRssBytes)} of this machine's ${gb(run.totalMemBytes)}` : '';
  // A SIGKILL nobody here sent, from a server near the machine's memory, is the kernel's OOM killer.
  const oom = death.signal === 'SIGKILL' && death.peakRssBytes !== null && death.peakRssBytes > run.totalMemBytes * 0.5;
  const why = oom ? ": the kernel's OOM killer (dmesg names it)" : '';
  const legacy2016 = run.threadHandling === 'one-thread-per-connection' && run.godQuery === '2016';
  const advice = legacy2016
    ? `${run.hypervisors.toLocaleString('en-US')} agents each running the 2016 god query on a thread of its own need more memory than this machine has; ` +
      'that is the 2016 failure this demo reproduces. To watch the migration at this size run --god-query optimized --thread-handling pool-of-threads, or fewer --hypervisors'
    : 'the report was not written; the log above has what each service saw';
  return `the demo's database server (pid ${death.pid}) ${how}${memory}${why}. ${advice}`;
}
