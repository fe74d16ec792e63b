/**
 * What a benchmark run cost the MySQL server and the machine, read from the
 * server and the kernel, not counted by clients: SHOW GLOBAL STATUS deltas
 * (statements, commits, row lock waits), Threads_running sampled during the
 * run, per-user statements and server CPU (MariaDB's USER_STATISTICS), the
 * mariadbd process's CPU and chosen processes' CPU (/proc), and the
 * machine's load.
 *
 * @example
 *   const watch = await watchServer(adminDb, { users: ['scheduler_v2'] });
 *   … the run …
 *   const figures = await watch.stop({ pids: replicaPids });
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Knex } from 'knex';
import { readUserLoad, type UserLoad } from '../lib/metrics/user-statistics.ts';

const STATUS = [
  'Questions',
  'Com_select',
  'Com_insert',
  'Com_update',
  'Com_delete',
  'Com_begin',
  'Com_commit',
  'Com_rollback',
  'Innodb_row_lock_waits',
  'Innodb_row_lock_time',
  'Innodb_deadlocks',
  'Innodb_rows_read',
  'Innodb_rows_updated',
  'Innodb_rows_inserted',
] as const;

type StatusName = (typeof STATUS)[number];

export interface ServerFigures {
  seconds: number;
  /** SHOW GLOBAL STATUS deltas over the run (everyone's statements: schedulers, simulated agents, the bench's own polling). */
  global: Record<StatusName, number>;
  /** Threads_running sampled every 100 ms during the run. */
  threads_running: { mean: number; max: number; samples: number };
  /** Per MySQL user: statements and the server time they cost (deltas; empty without userstat). */
  by_user: Record<string, Omit<UserLoad, 'rows_updated' | 'rows_inserted'> & { statements: number }>;
  /** CPU seconds of the mariadbd process over the run, and as a share of one core (null where /proc or the pid file is not readable). */
  mysqld_cpu: { seconds: number; cores: number } | null;
  /** CPU seconds of the processes given to stop() (e.g. scheduler replicas), summed. */
  processes_cpu: { seconds: number; cores: number; processes: number } | null;
  /** The whole machine: cores, share of all cores busy during the run (/proc/stat), 1-minute load average at start and end. */
  machine: { cores: number; busy_share: number | null; load_avg_1m: { start: number; end: number }; autogroup: boolean | null };
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

async function globalStatus(db: Knex): Promise<Record<string, number>> {
  const [rows] = (await db.raw(`SHOW GLOBAL STATUS WHERE Variable_name IN (${STATUS.map(() => '?').join(',')})`, [...STATUS])) as [
    Array<{ Variable_name: string; Value: string }>,
  ];
  return Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
}

/** utime + stime of a process, in seconds (undefined when /proc is not readable). */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    // The fields after the command name (which may hold spaces) start after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
    const total = cpu.reduce((s, v) => s + v, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Whether the kernel shares CPU between sessions rather than processes (sched_autogroup); null where unknown. */
function autogroupEnabled(): boolean | null {
  try {
    return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return null;
  }
}

async function mysqldPid(db: Knex): Promise<number | undefined> {
  try {
    const [[row]] = (await db.raw('SELECT @@pid_file AS f')) as [[{ f: string }]];
    const pid = Number(readFileSync(row.f, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function watchServer(db: Knex, options: { users: readonly string[] }) {
  const pid = await mysqldPid(db);
  const started = performance.now();
  const loadStart = os.loadavg()[0]!;
  const statusBefore = await globalStatus(db);
  const usersBefore = await readUserLoad(db);
  const mysqldBefore = pid === undefined ? undefined : processCpuSeconds(pid);
  const ticksBefore = machineTicks();
  const threads: number[] = [];
  let sampling = false;
  const sampler = setInterval(() => {
    if (sampling) return;
    sampling = true;
    db.raw("SHOW GLOBAL STATUS LIKE 'Threads_running'")
      .then(([[row]]: [[{ Value: string }]]) => void threads.push(Number(row.Value)))
      .catch(() => {})
      .finally(() => (sampling = false));
  }, 100);
  let processesBefore: Map<number, number> | undefined;

  return {
    /** Processes whose CPU to count from now on (started after the watch, e.g. replicas). */
    trackProcesses(pids: readonly number[]): void {
      processesBefore = new Map(pids.map((p) => [p, processCpuSeconds(p) ?? 0]));
    },
    async stop(): Promise<ServerFigures> {
      clearInterval(sampler);
      const seconds = (performance.now() - started) / 1000;
      const processesCpu = processesBefore ? [...processesBefore].reduce((s, [p, before]) => s + ((processCpuSeconds(p) ?? before) - before), 0) : undefined;
      const mysqldAfter = pid === undefined ? undefined : processCpuSeconds(pid);
      const ticksAfter = machineTicks();
      const statusAfter = await globalStatus(db);
      const usersAfter = await readUserLoad(db);
      const byUser: ServerFigures['by_user'] = {};
      for (const user of options.users) {
        const a = usersAfter[user];
        if (!a) continue;
        const b = usersBefore[user];
        const d = (k: keyof UserLoad) => a[k] - (b?.[k] ?? 0);
        byUser[user] = {
          statements: d('select') + d('update') + d('other'),
          select: d('select'),
          update: d('update'),
          other: d('other'),
          commits: d('commits'),
          rollbacks: d('rollbacks'),
          cpu_seconds: round(d('cpu_seconds')),
          busy_seconds: round(d('busy_seconds')),
          rows_read: d('rows_read'),
        };
      }
      return {
        seconds: round(seconds),
        global: Object.fromEntries(STATUS.map((k) => [k, (statusAfter[k] ?? 0) - (statusBefore[k] ?? 0)])) as Record<StatusName, number>,
        threads_running: {
          mean: threads.length ? round(threads.reduce((s, v) => s + v, 0) / threads.length, 2) : 0,
          max: threads.length ? Math.max(...threads) : 0,
          samples: threads.length,
        },
        by_user: byUser,
        mysqld_cpu: mysqldBefore !== undefined && mysqldAfter !== undefined ? { seconds: round(mysqldAfter - mysqldBefore, 2), cores: round((mysqldAfter - mysqldBefore) / seconds, 2) } : null,
        processes_cpu: processesCpu !== undefined ? { seconds: round(processesCpu, 2), cores: round(processesCpu / seconds, 2), processes: processesBefore!.size } : null,
        machine: {
          cores: os.cpus().length,
          busy_share: ticksBefore && ticksAfter ? round((ticksAfter.busy - ticksBefore.busy) / Math.max(1, ticksAfter.total - ticksBefore.total), 2) : null,
          load_avg_1m: { start: round(loadStart, 2), end: round(os.loadavg()[0]!, 2) },
          autogroup: autogroupEnabled(),
        },
      };
    },
  };
}
