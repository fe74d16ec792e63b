import type { Knex } from 'knex';

/** Statements per MySQL user, as the server counts them (MariaDB's userstat plugin). */
export interface UserCommandCounts {
  select: number;
  update: number;
  other: number;
}

/**
 * Turns on MariaDB's per-user statistics if the server has them; `enabled`
 * is false on servers without the feature (MySQL), so callers fall back to
 * global counters. `restore()` puts the setting back as it was, since a
 * found server is not ours to reconfigure for good.
 */
export async function enableUserStatistics(admin: Knex): Promise<{ enabled: boolean; restore(): Promise<void> }> {
  try {
    const [[row]] = (await admin.raw('SELECT @@GLOBAL.userstat AS v')) as [[{ v: number }]];
    const before = Number(row.v);
    await admin.raw('SET GLOBAL userstat = 1');
    return { enabled: true, restore: async () => void (await admin.raw('SET GLOBAL userstat = ?', [before]).catch(() => {})) };
  } catch {
    return { enabled: false, restore: async () => {} };
  }
}

/**
 * Reads `information_schema.USER_STATISTICS`: SELECT/UPDATE/other commands
 * each MySQL user has run. Polling load per service comes from deltas of
 * these, measured by the server, not by clients.
 *
 * @example
 *   const before = await readUserCommandCounts(db); … const after = await readUserCommandCounts(db);
 *   (after.dobe.select - before.dobe.select) / seconds // god queries per second
 */
export async function readUserCommandCounts(db: Knex): Promise<Record<string, UserCommandCounts>> {
  try {
    const [rows] = (await db.raw(
      'SELECT USER AS user, SELECT_COMMANDS AS s, UPDATE_COMMANDS AS u, OTHER_COMMANDS AS o FROM information_schema.USER_STATISTICS',
    )) as [Array<{ user: string; s: number; u: number; o: number }>];
    return Object.fromEntries(rows.map((r) => [r.user, { select: Number(r.s), update: Number(r.u), other: Number(r.o) }]));
  } catch {
    return {};
  }
}

/**
 * Rows the server has read from one table so far, by anyone
 * (`information_schema.TABLE_STATISTICS`, MariaDB's userstat); undefined
 * where the server does not keep them. A delta of 0 over an idle window
 * means nothing polls the table.
 *
 * @example
 *   const before = await readTableRowsRead(db, 'strangler_demo', 'events'); … await sleep(5000);
 *   (await readTableRowsRead(db, 'strangler_demo', 'events'))! - before!   // 0 once Harpoon owns events
 */
export async function readTableRowsRead(db: Knex, schema: string, table: string): Promise<number | undefined> {
  try {
    const [rows] = (await db.raw('SELECT ROWS_READ AS n FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [schema, table])) as [
      Array<{ n: number | string }>,
    ];
    return Number(rows[0]?.n ?? 0);
  } catch {
    return undefined;
  }
}

/** What one MySQL user has cost the server so far (MariaDB's USER_STATISTICS). */
export interface UserLoad extends UserCommandCounts {
  commits: number;
  rollbacks: number;
  /** Server CPU time spent on this user's statements, in seconds. */
  cpu_seconds: number;
  /** Server wall time spent on this user's statements (waits included), in seconds. */
  busy_seconds: number;
  rows_read: number;
  rows_updated: number;
  rows_inserted: number;
}

/**
 * Per-user statement counts and the server time they cost, by user; {} on
 * servers without userstat. Deltas around a run say what each service asked
 * of the server, measured by the server.
 *
 * @example
 *   const before = await readUserLoad(db); … const after = await readUserLoad(db);
 *   after.scheduler_v2!.cpu_seconds - before.scheduler_v2!.cpu_seconds
 */
export async function readUserLoad(db: Knex): Promise<Record<string, UserLoad>> {
  try {
    const [rows] = (await db.raw(
      `SELECT USER AS user, SELECT_COMMANDS AS s, UPDATE_COMMANDS AS u, OTHER_COMMANDS AS o, COMMIT_TRANSACTIONS AS c,
              ROLLBACK_TRANSACTIONS AS r, CPU_TIME AS cpu, BUSY_TIME AS busy, ROWS_READ AS rr, ROWS_UPDATED AS ru, ROWS_INSERTED AS ri
         FROM information_schema.USER_STATISTICS`,
    )) as [Array<Record<string, number | string>>];
    return Object.fromEntries(
      rows.map((r) => [
        String(r.user),
        {
          select: Number(r.s),
          update: Number(r.u),
          other: Number(r.o),
          commits: Number(r.c),
          rollbacks: Number(r.r),
          cpu_seconds: Number(r.cpu),
          busy_seconds: Number(r.busy),
          rows_read: Number(r.rr),
          rows_updated: Number(r.ru),
          rows_inserted: Number(r.ri),
        },
      ]),
    );
  } catch {
    return {};
  }
}
