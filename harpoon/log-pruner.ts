/**
 * Pruning `event_log` (issue 12: it grew forever).
 *
 * What "every subscriber's cursor has passed it" can mean here: Harpoon's
 * subscribers are not durable consumers. A stream's position lives in the
 * client (Last-Event-ID), Harpoon keeps no acknowledged offset per consumer,
 * and a consumer that lost its position starts again from a catch-up read
 * of `events` (harpoon/follow.ts), not from the log. So the log only has to
 * cover a subscriber that reconnects: an entry is pruned once it is older
 * than the retention window (default 1 h, while reconnects take seconds)
 * AND it is not among the newest `keepRows` (the ring a restarted replica
 * loads, and the head, so MAX(id) never goes back) AND no subscriber of
 * this replica is still catching up from before it. A subscriber that
 * comes back with an older cursor is told so (410
 * HARPOON_ERR_CURSOR_TOO_OLD, or an `event: too-old` frame if it happens
 * mid catch-up), never served a stream with a silent gap: it reads the
 * state again and resumes from that read's cursor.
 *
 * Bounded: each batch deletes at most `batch` entries by primary key in its
 * own short transaction, together with the move of `event_log_horizon`
 * (so a reader that sees the rows gone also sees the horizon that explains
 * it); a run stops after `maxBatches`. One replica at a time: a run holds
 * the MariaDB named lock `harpoon_prune:<database>` (GET_LOCK with no
 * wait), so replicas need no election, and a dead replica's lock goes with
 * its connection.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Pool, PoolConnection } from 'mysql2/promise';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';

export interface LogPrunerOptions {
  pool: Pool;
  registry: Registry;
  logger: Logger;
  /** Entries younger than this are kept (default 3,600,000 ms: a reconnecting subscriber resumes within an hour). */
  retentionMs?: number;
  /** The newest entries always kept (default 10,000: the replicas' ring). */
  keepRows?: number;
  /** Entries per delete transaction (default 1000). */
  batch?: number;
  /** Batches per run at most (default 50). */
  maxBatches?: number;
  /** Between runs (default 60,000 ms). */
  intervalMs?: number;
  /** The lowest cursor a subscriber of this replica is still catching up from: entries after it are kept. */
  protectFrom?: () => number | undefined;
}

export interface PruneResult {
  /** False when another replica held the prune lock. */
  ran: boolean;
  deleted: number;
  /** Every entry with a cursor up to this one is gone. */
  horizon: number;
}

export interface LogPruner {
  start(): void;
  /** One run now (the timer runs the same). */
  pruneOnce(): Promise<PruneResult>;
  close(): Promise<void>;
}

/** The cursor through which `event_log` was pruned: a resume from below it would skip entries. */
export async function readHorizon(pool: Pool | PoolConnection): Promise<number> {
  const [rows] = await pool.query('SELECT pruned_through FROM event_log_horizon WHERE id = 1');
  return Number((rows as Array<{ pruned_through: number | string }>)[0]?.pruned_through ?? 0);
}

/** Named locks are server-wide: one per database. */
const LOCK_NAME = "CONCAT('harpoon_prune:', DATABASE())";

function int(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw invalidOption(name, value, `an integer >= ${min}`);
  return v;
}

/**
 * @example
 *   const pruner = createLogPruner({ pool, registry, logger, protectFrom: () => hub.oldestCatchUp() });
 *   pruner.start(); … await pruner.close();
 */
export function createLogPruner(options: LogPrunerOptions): LogPruner {
  const retentionMs = int('retentionMs', options.retentionMs, 3_600_000, 0);
  const keepRows = int('keepRows', options.keepRows, 10_000, 1);
  const batch = int('batch', options.batch, 1000, 1);
  const maxBatches = int('maxBatches', options.maxBatches, 50, 1);
  const intervalMs = int('intervalMs', options.intervalMs, 60_000, 50);
  const { pool } = options;
  const log = options.logger.child({ component: 'log-pruner' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<PruneResult> | undefined;
  let size: { rows: number; bytes: number; horizon: number } | undefined;

  const pruned = new Counter({ name: 'harpoon_event_log_pruned_total', help: 'event_log entries this replica deleted (past the retention window and every local catch-up).', registers: [options.registry] });
  // Read from the server after every run (every intervalMs), not per scrape: scrapes cost MySQL nothing.
  async function readSize(conn: PoolConnection): Promise<void> {
    const [rows] = await conn.query(
      `SELECT t.TABLE_ROWS AS n, t.DATA_LENGTH + t.INDEX_LENGTH AS bytes, (SELECT pruned_through FROM event_log_horizon WHERE id = 1) AS horizon
         FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = 'event_log'`,
    );
    const r = (rows as Array<{ n: number | string | null; bytes: number | string | null; horizon: number | string | null }>)[0];
    size = { rows: Number(r?.n ?? 0), bytes: Number(r?.bytes ?? 0), horizon: Number(r?.horizon ?? 0) };
  }
  const gauge = (name: string, help: string, pick: (s: { rows: number; bytes: number; horizon: number }) => number) =>
    new Gauge({
      name,
      help,
      registers: [options.registry],
      collect() {
        if (size) this.set(pick(size));
      },
    });
  gauge('harpoon_event_log_rows', 'Entries in event_log, as the server estimates them (information_schema TABLE_ROWS), read after each prune run.', (s) => s.rows);
  gauge('harpoon_event_log_bytes', 'Bytes event_log takes on the server, data and indexes (information_schema), read after each prune run.', (s) => s.bytes);
  gauge('harpoon_event_log_horizon', 'The cursor through which event_log was pruned: a stream resumed from below it is answered HARPOON_ERR_CURSOR_TOO_OLD.', (s) => s.horizon);

  /** The last cursor of the next batch to delete, or undefined when nothing more may go. */
  async function nextCut(conn: PoolConnection, horizon: number): Promise<number | undefined> {
    const [heads] = await conn.query('SELECT COALESCE(MAX(id), 0) AS head FROM event_log');
    let limit = Number((heads as Array<{ head: number | string }>)[0]!.head) - keepRows;
    const protect = options.protectFrom?.();
    if (protect !== undefined) limit = Math.min(limit, protect);
    if (limit <= horizon) return undefined;
    // By primary key from the horizon: the oldest entries, those old enough, and stop at the first that is not.
    const [rows] = await conn.query(
      'SELECT id, committed_at < NOW(3) - INTERVAL ? MICROSECOND AS old FROM event_log WHERE id > ? AND id <= ? ORDER BY id LIMIT ?',
      [retentionMs * 1000, horizon, limit, batch],
    );
    let cut: number | undefined;
    for (const r of rows as Array<{ id: number | string; old: number }>) {
      if (Number(r.old) !== 1) break;
      cut = Number(r.id);
    }
    return cut;
  }

  async function run(): Promise<PruneResult> {
    const conn = await pool.getConnection();
    try {
      const result = await pruneWith(conn);
      await readSize(conn);
      return result;
    } finally {
      conn.release();
    }
  }

  async function pruneWith(conn: PoolConnection): Promise<PruneResult> {
    const [got] = await conn.query(`SELECT GET_LOCK(${LOCK_NAME}, 0) AS got`);
    if (Number((got as Array<{ got: number | null }>)[0]?.got) !== 1) return { ran: false, deleted: 0, horizon: await readHorizon(conn) };
    try {
      let horizon = await readHorizon(conn);
      let deleted = 0;
      for (let i = 0; i < maxBatches; i++) {
        const cut = await nextCut(conn, horizon);
        if (cut === undefined) break;
        await conn.query('BEGIN');
        try {
          await conn.query('UPDATE event_log_horizon SET pruned_through = GREATEST(pruned_through, ?) WHERE id = 1', [cut]);
          const [res] = await conn.query('DELETE FROM event_log WHERE id > ? AND id <= ?', [horizon, cut]);
          await conn.query('COMMIT');
          const n = (res as { affectedRows: number }).affectedRows;
          deleted += n;
          pruned.inc(n);
        } catch (err) {
          await conn.query('ROLLBACK').catch(() => {});
          throw err;
        }
        horizon = cut;
      }
      if (deleted > 0) {
        log.info({ deleted, horizon }, 'pruned event_log entries past the retention window');
      }
      return { ran: true, deleted, horizon };
    } finally {
      await conn.query(`SELECT RELEASE_LOCK(${LOCK_NAME})`).catch(() => {});
    }
  }

  function pruneOnce(): Promise<PruneResult> {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  }

  return {
    start() {
      timer = setInterval(() => void pruneOnce().catch((err: Error) => log.warn({ err: err.message }, 'event_log pruning failed; the next run retries')), intervalMs);
      timer.unref();
    },
    pruneOnce,
    async close() {
      if (timer) clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
