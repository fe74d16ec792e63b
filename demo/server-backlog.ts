import type { Knex } from 'knex';
import { readThreadsRunning } from './server-load.ts';

/**
 * The backlog inside the server, sampled while a stage or a burst runs: how many statements execute
 * at once (Threads_running), how long the oldest of them has been running (PROCESSLIST.TIME_MS), how
 * many transactions wait for a lock and on which table (INNODB_TRX joined with INNODB_LOCKS), and how
 * many events are waiting to be executed. Everything is read from the server, never from a client.
 */
export interface BacklogSummary {
  threads_running: { peak: number; mean: number; n: number };
  /**
   * With `detail`: the longest any statement had been running at a sample, and how many samples there
   * were. A maximum, not a percentile: a burst of seconds gives tens of samples, too few for a p99.
   */
  oldest_statement_ms?: OldestStatement;
  /** With `detail`: the most transactions seen waiting for a lock in one sample. */
  lock_waiting_transactions_peak?: number;
  /**
   * With `detail`: samples × waiting transactions, by the table the wait is on and the user waiting
   * ("events by cloud": Cloud's statements waited on a lock in `events`); where the waits are, not only how many.
   */
  lock_waits_seen?: Record<string, number>;
  /** With `detail`: the most events pending or running at one sample (the queue's own backlog). */
  events_unfinished_peak?: number;
}

/** The oldest running statement over the samples (PROCESSLIST.TIME_MS). */
export interface OldestStatement {
  max: number;
  n: number;
}

export interface BacklogWatchOptions {
  intervalMs?: number;
  /**
   * Also read PROCESSLIST, the lock tables and the event queue at each sample. Off for a whole stage
   * (at 15,000 connections PROCESSLIST is 15,000 rows); on for a short burst.
   */
  detail?: boolean;
}

interface RunningStatement {
  USER: string;
  TIME_MS: number | string;
}

interface LockWait {
  user: string | null;
  lock_table: string | null;
}

/**
 * Samples the server about every `intervalMs` until stopped; a sample still running when the next is
 * due is skipped, so a stalled server is sampled less often, not piled on.
 *
 * @example
 *   const watch = watchServerBacklog(db, { detail: true });
 *   … const { threads_running, lock_waits_seen } = await watch.stop();
 */
export function watchServerBacklog(db: Knex, options: BacklogWatchOptions = {}) {
  const intervalMs = options.intervalMs ?? 500;
  const threads: number[] = [];
  const oldest: number[] = [];
  const waitsSeen: Record<string, number> = {};
  let waitingPeak = 0;
  let unfinishedPeak = 0;
  let busy = false;
  let ownId: number | undefined;

  async function sampleDetail(): Promise<void> {
    if (ownId === undefined) {
      // The sampler's own statements are not the backlog: PROCESSLIST excludes the connection asking.
      const [[row]] = (await db.raw('SELECT CONNECTION_ID() AS id')) as [[{ id: number }]];
      ownId = Number(row.id);
    }
    const [running] = (await db.raw(
      "SELECT USER, TIME_MS FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND ID <> CONNECTION_ID() AND USER <> 'system user'",
    )) as [RunningStatement[]];
    oldest.push(running.reduce((max, r) => Math.max(max, Number(r.TIME_MS)), 0));
    const [waits] = (await db.raw(
      `SELECT p.USER AS user, l.lock_table AS lock_table
         FROM information_schema.INNODB_TRX t
         LEFT JOIN information_schema.INNODB_LOCKS l ON l.lock_id = t.trx_requested_lock_id
         LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
        WHERE t.trx_state = 'LOCK WAIT'`,
    )) as [LockWait[]];
    waitingPeak = Math.max(waitingPeak, waits.length);
    for (const w of waits) {
      const key = `${tableName(w.lock_table)} by ${w.user ?? '?'}`;
      waitsSeen[key] = (waitsSeen[key] ?? 0) + 1;
    }
    const [[queue]] = (await db.raw("SELECT COUNT(*) AS n FROM events WHERE status IN ('pending', 'running')")) as [[{ n: number }]];
    unfinishedPeak = Math.max(unfinishedPeak, Number(queue.n));
  }

  async function sample(): Promise<void> {
    threads.push(await readThreadsRunning(db));
    if (options.detail) await sampleDetail();
  }

  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    inFlight = sample()
      .catch(() => {})
      .finally(() => (busy = false));
  }, intervalMs);

  return {
    /**
     * Stops sampling and summarises. The sample in flight is waited for and one last one is taken,
     * so even a burst shorter than the interval on a stalled server has a sample.
     */
    async stop(): Promise<BacklogSummary> {
      clearInterval(timer);
      await inFlight;
      await sample().catch(() => {});
      const n = threads.length;
      const summary: BacklogSummary = {
        threads_running: {
          peak: n ? Math.max(...threads) : 0,
          mean: n ? Math.round((threads.reduce((a, b) => a + b, 0) / n) * 10) / 10 : 0,
          n,
        },
      };
      if (options.detail) {
        summary.oldest_statement_ms = { max: oldest.length ? Math.max(...oldest) : 0, n: oldest.length };
        summary.lock_waiting_transactions_peak = waitingPeak;
        summary.lock_waits_seen = waitsSeen;
        summary.events_unfinished_peak = unfinishedPeak;
      }
      return summary;
    },
  };
}

/** `` `db`.`events` `` → `events`; INNODB_LOCKS names tables with their schema, quoted. */
function tableName(lockTable: string | null): string {
  if (!lockTable) return '?';
  const parts = lockTable.split('.');
  return parts[parts.length - 1]!.replace(/`/g, '');
}
