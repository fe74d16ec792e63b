import mysql from 'mysql2/promise';
import { EVENT_DATA_OWNER, EVENT_DATA_TABLES, allowedUnderLockdown } from '../domain/event-data.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { SERVICE_USERS, serviceDbConfig, type DbPasswords, type ServiceUser } from '../lib/db/service-users.ts';

/** What a user may do to a table, as the server answered the attempt. */
export type Attempt = 'allowed' | 'denied' | 'login-failed';
export const OPERATIONS = ['select', 'insert', 'update', 'delete'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface LockdownVerification {
  database: string;
  /** user → table → operation → what the server did. */
  matrix: Record<string, Record<string, Record<Operation, Attempt>>>;
  /** Cells other than Harpoon's that the server allowed, hand-offs aside: empty when lockdown holds. */
  violations: string[];
  /** Allowed by design (Cloud's own outbox, domain/event-data.ts), listed so an operator sees them. */
  handoffs: string[];
  /** Harpoon could read and insert into events and event_log. */
  owner_ok: boolean;
  ok: boolean;
  checked_at: string;
}

const PRIVILEGE: Record<Operation, string> = { select: 'SELECT', insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' };
const DENIED = new Set(['ER_TABLEACCESS_DENIED_ERROR', 'ER_COLUMNACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_SPECIFIC_ACCESS_DENIED_ERROR']);

/**
 * Statements that need the privilege and change nothing: each runs in a
 * transaction that is rolled back, and the writes match no row (an INSERT
 * that passes the privilege check fails on its missing columns or is rolled
 * back). Table names come from domain/event-data.ts, never from input.
 */
function probe(op: Operation, table: string): string {
  switch (op) {
    case 'select':
      return `SELECT 1 FROM \`${table}\` LIMIT 1`;
    case 'insert':
      return `INSERT INTO \`${table}\` () VALUES ()`;
    case 'update':
      return `UPDATE \`${table}\` SET id = id WHERE 1 = 0`;
    case 'delete':
      return `DELETE FROM \`${table}\` WHERE 1 = 0`;
  }
}

/**
 * Logs in as every service user and tries to read and write each
 * event-data table (nothing is written: every attempt is rolled back), and
 * says whether Harpoon alone succeeds. `strangler cutover verify-lockdown`
 * prints it; the demo puts it in report.json.
 *
 * @example
 *   const v = await verifyLockdown({ server: admin, database: 'strangler_demo', passwords: secrets.db });
 *   if (!v.ok) console.error(v.violations);
 */
export async function verifyLockdown(options: { server: DbConfig; database: string; passwords: DbPasswords; users?: readonly ServiceUser[] }): Promise<LockdownVerification> {
  const matrix: LockdownVerification['matrix'] = {};
  const violations: string[] = [];
  const handoffs: string[] = [];
  let ownerOk = true;
  for (const user of options.users ?? SERVICE_USERS) {
    const row: Record<string, Record<Operation, Attempt>> = {};
    matrix[user] = row;
    let conn: mysql.Connection | undefined;
    try {
      conn = await mysql.createConnection({ ...serviceDbConfig(options.server, options.database, user, options.passwords), connectTimeout: 10_000 });
    } catch {
      for (const table of EVENT_DATA_TABLES) row[table] = { select: 'login-failed', insert: 'login-failed', update: 'login-failed', delete: 'login-failed' };
      if (user === EVENT_DATA_OWNER) ownerOk = false;
      continue;
    }
    try {
      for (const table of EVENT_DATA_TABLES) {
        const cells = {} as Record<Operation, Attempt>;
        for (const op of OPERATIONS) {
          await conn.query('START TRANSACTION');
          let attempt: Attempt = 'allowed';
          try {
            await conn.query(probe(op, table));
          } catch (err) {
            if (DENIED.has((err as { code?: string }).code ?? '')) attempt = 'denied';
          } finally {
            await conn.query('ROLLBACK');
          }
          cells[op] = attempt;
          const cell = `${user} ${op} ${table}`;
          if (user === EVENT_DATA_OWNER) {
            // Harpoon reads and appends events and their log; the outbox is Cloud's hand-off, not Harpoon's.
            if (attempt !== 'allowed' && table !== 'event_outbox' && (op === 'select' || op === 'insert')) ownerOk = false;
          } else if (attempt === 'allowed') {
            (allowedUnderLockdown(user, table, PRIVILEGE[op]) ? handoffs : violations).push(cell);
          }
        }
        row[table] = cells;
      }
    } finally {
      await conn.end().catch(() => conn?.destroy());
    }
  }
  return { database: options.database, matrix, violations, handoffs, owner_ok: ownerOk, ok: violations.length === 0 && ownerOk, checked_at: new Date().toISOString() };
}
