/**
 * What the benches read from Linux /proc about their own processes: CPU
 * time (including threads that already ended), and the time threads spent
 * runnable but waiting for a core. On a shared machine these separate
 * "this work is slow" from "this process did not get a core".
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICK_US = (() => {
  try {
    return 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  } catch {
    return 1e4;
  }
})();

/** A process and its descendants (a cluster's workers), from /proc. */
export function tree(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids.flatMap(tree)];
  } catch {
    return [pid];
  }
}

/** CPU time used so far by these processes, in µs (undefined where /proc is not there). */
export function cpuUs(pids: number[]): number | undefined {
  let ticks = 0;
  try {
    for (const pid of pids) {
      // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    }
  } catch {
    return undefined;
  }
  return ticks * TICK_US;
}


/**
 * A process's CPU time and the time its threads waited on a run queue
 * (Linux /proc/<pid>/task/<tid>/schedstat, all threads, in ms). On a shared
 * machine a late delivery is either work (cpu) or waiting for a core (wait).
 */
export function schedStat(pid: number | undefined): { cpu_ms: number; wait_ms: number } | undefined {
  if (!pid) return undefined;
  try {
    let cpu = 0;
    let wait = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const [run, queued] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      cpu += run ?? 0;
      wait += queued ?? 0;
    }
    return { cpu_ms: cpu / 1e6, wait_ms: wait / 1e6 };
  } catch {
    return undefined; // not Linux, or the process is gone
  }
}

/** What `schedStat` counted between two readings, per second of wall time. */
export function schedDelta(a: ReturnType<typeof schedStat>, b: ReturnType<typeof schedStat>, seconds: number) {
  // Threads that ended between the readings (a server's thread pool) take their counts with them.
  if (!a || !b || b.cpu_ms < a.cpu_ms || b.wait_ms < a.wait_ms) return null;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { cpu_ms_per_s: r((b.cpu_ms - a.cpu_ms) / seconds), runqueue_wait_ms_per_s: r((b.wait_ms - a.wait_ms) / seconds) };
}
