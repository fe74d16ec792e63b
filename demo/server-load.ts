import { readFile } from 'node:fs/promises';
import type { Knex } from 'knex';
export { readProcessMemory } from '../lib/process/process-memory.ts';

/**
 * What a stage cost the database server, read from the server and its
 * process: lock waits (InnoDB row locks, table locks), how many statements
 * ran at once (Threads_running), and mariadbd's CPU and memory. These are
 * the "table locks and query backlogs" the talk lists before Harpoon.
 */
export interface ServerCounters {
  at: number;
  rowLockWaits: number;
  rowLockTimeMs: number;
  tableLocksWaited: number;
  slowQueries: number;
  /** mariadbd's user+system CPU seconds, where the run started the server (its pid known). */
  cpuSeconds?: number;
}

const STATUS = ['Innodb_row_lock_waits', 'Innodb_row_lock_time', 'Table_locks_waited', 'Slow_queries'];

/** Reads the counters now (SHOW GLOBAL STATUS, /proc/<pid>/stat). */
export async function readServerCounters(db: Knex, serverPid?: number): Promise<ServerCounters> {
  const [rows] = (await db.raw(`SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS.map(() => '?').join(',')})`, STATUS)) as [
    Array<{ Variable_name: string; Value: string }>,
  ];
  const v = (name: string) => Number(rows.find((r) => r.Variable_name.toLowerCase() === name.toLowerCase())?.Value ?? 0);
  const cpuSeconds = serverPid ? await processCpuSeconds(serverPid) : undefined;
  return {
    at: Date.now(),
    rowLockWaits: v('Innodb_row_lock_waits'),
    rowLockTimeMs: v('Innodb_row_lock_time'),
    tableLocksWaited: v('Table_locks_waited'),
    slowQueries: v('Slow_queries'),
    ...(cpuSeconds !== undefined ? { cpuSeconds } : {}),
  };
}

/** Threads_running now: statements executing at this instant (the backlog inside the server). */
export async function readThreadsRunning(db: Knex): Promise<number> {
  const [[row]] = (await db.raw("SHOW GLOBAL STATUS LIKE 'Threads_running'")) as [[{ Value: string }]];
  return Number(row.Value);
}

/** utime + stime of a process, in seconds (Linux /proc; clock ticks are 100 per second there). */
async function processCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The stage's server figures, for StageReport.details. */
export function serverLoadDetails(
  before: ServerCounters,
  after: ServerCounters,
  threads: { peak: number; mean: number },
  rssBytes: number,
): Record<string, number> {
  const seconds = Math.max(0.001, (after.at - before.at) / 1000);
  return {
    innodb_row_lock_waits: after.rowLockWaits - before.rowLockWaits,
    innodb_row_lock_time_ms: after.rowLockTimeMs - before.rowLockTimeMs,
    table_locks_waited: after.tableLocksWaited - before.tableLocksWaited,
    slow_queries: after.slowQueries - before.slowQueries,
    threads_running_peak: threads.peak,
    threads_running_mean: threads.mean,
    ...(before.cpuSeconds !== undefined && after.cpuSeconds !== undefined
      ? { mariadbd_cpu_cores: Math.round(((after.cpuSeconds - before.cpuSeconds) / seconds) * 100) / 100 }
      : {}),
    ...(rssBytes > 0 ? { mariadbd_rss_mb: Math.round(rssBytes / 1048576) } : {}),
  };
}
