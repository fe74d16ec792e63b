/**
 * Before lockdown revokes anything: who still touches event data? A user
 * that still reads `events` when its grant goes starts failing in
 * production, so the lockdown step refuses while anyone but Harpoon (and
 * the hand-offs of domain/event-data.ts) is seen at it.
 *
 * MariaDB 10.11 has no per-user-and-table history without a restart
 * (performance_schema is fixed at start, off by default; the audit plugin
 * writes a file on the server's host). What it does have, measured on the
 * throwaway servers the tests start (runbooks/security.md: preflight):
 * - information_schema.PROCESSLIST: each connection's user, database and
 *   current statement. Sampled every `sampleMs` over `windowMs`, the
 *   statements naming an event-data table give user × table × operation.
 *   It sees what runs at a sample, so a statement of a few milliseconds
 *   run rarely can slip between two: a poller is caught, a one-off may not be.
 * - userstat (USER_STATISTICS, TABLE_STATISTICS), when the server has it on:
 *   rows read and changed per event-data table in the window, and which
 *   users ran statements, but not the two together; reported beside, as a
 *   check that the window saw the activity there was.
 *
 * @example
 *   const p = await lockdownPreflight(rootKnex, 'strangler_demo', { windowMs: 5000 });
 *   if (!p.ok) console.log(p.offenders); // ['dobe']
 */
import type { Knex } from 'knex';
import { allowedUnderLockdown, EVENT_DATA_OWNER, EVENT_DATA_TABLES } from '../domain/event-data.ts';
import { readEventGrants } from './lockdown.ts';

export interface PreflightOptions {
  /** How long to watch (default 5000 ms). */
  windowMs?: number;
  /** Pause between two process-list samples (default 20 ms). */
  sampleMs?: number;
  /** Accounts that keep event data (default: harpoon). */
  keep?: readonly string[];
}

export interface TouchedTable {
  user: string;
  table: string;
  /** Statement kinds seen (SELECT, INSERT, UPDATE, DELETE, …). */
  operations: string[];
  /** Samples in which one of this user's statements named the table. */
  samples: number;
  /** Whether lockdown leaves this: Harpoon, a hand-off, or an administrator (a global grant lockdown never changes). */
  allowed: boolean;
}

export interface LockdownPreflight {
  database: string;
  window_ms: number;
  samples: number;
  /** Which server-side sources this server offered. */
  sources: { processlist: boolean; userstat: boolean; performance_schema: boolean };
  touched: TouchedTable[];
  /** Users seen touching event data that lockdown would cut off: the preflight refuses while any is. */
  offenders: string[];
  /** Users connected to the database during the window (any statement or idle), with their most connections at once. */
  connected: Array<{ user: string; connections: number }>;
  /** userstat only: rows read and changed per event-data table in the window. */
  table_activity: Record<string, { rows_read: number; rows_changed: number }> | null;
  /** userstat only: users that ran statements in the window (on any table). */
  active_users: string[] | null;
  ok: boolean;
}

interface ProcessRow {
  id: number | string;
  user: string;
  info: string | null;
}

const TABLE_WORD = new RegExp(`(?<![\\w$])\`?(${EVENT_DATA_TABLES.join('|')})\`?(?![\\w$])`, 'gi');

/** The event-data tables a statement names and its kind; literals and comments are dropped first (a string may say "events"). */
export function statementTouches(sql: string): { operation: string; tables: string[] } {
  const bare = sql
    .replace(/'(?:[^'\\]|\\.|'')*'/g, "''")
    .replace(/"(?:[^"\\]|\\.|"")*"/g, '""')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/(--|#)[^\n]*/g, ' ');
  const operation = (/^\s*\(?\s*([A-Za-z]+)/.exec(bare)?.[1] ?? '?').toUpperCase();
  const tables = new Set<string>();
  for (const m of bare.matchAll(TABLE_WORD)) tables.add(m[1]!.toLowerCase());
  return { operation: operation === 'REPLACE' ? 'INSERT' : operation, tables: [...tables] };
}

async function rows<T>(db: Knex, sql: string, params: Knex.RawBinding[] = []): Promise<T[]> {
  const [result] = (await db.raw(sql, params)) as [T[]];
  return result;
}

async function variable(db: Knex, name: 'userstat' | 'performance_schema'): Promise<boolean> {
  const found = await rows<{ v: string }>(db, 'SELECT VARIABLE_VALUE AS v FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = ?', [name.toUpperCase()]).catch(() => []);
  return ['ON', '1'].includes(String(found[0]?.v ?? '').toUpperCase());
}

async function tableCounters(db: Knex, database: string): Promise<Map<string, { read: number; changed: number }>> {
  const list = await rows<{ t: string; r: number | string; c: number | string }>(
    db,
    'SELECT TABLE_NAME AS t, ROWS_READ AS r, ROWS_CHANGED AS c FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)',
    [database, [...EVENT_DATA_TABLES]],
  );
  return new Map(list.map((r) => [r.t, { read: Number(r.r), changed: Number(r.c) }]));
}

async function userCommands(db: Knex): Promise<Map<string, number>> {
  const list = await rows<{ u: string; n: number | string }>(db, 'SELECT USER AS u, SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS AS n FROM information_schema.USER_STATISTICS');
  return new Map(list.map((r) => [r.u, Number(r.n)]));
}

/**
 * Watches the server for `windowMs` and says who touched `<database>`'s
 * event data meanwhile. Must run as an account that sees every connection
 * (PROCESS privilege: the admin/root account lockdown runs as). Reads only.
 */
export async function lockdownPreflight(admin: Knex, database: string, options: PreflightOptions = {}): Promise<LockdownPreflight> {
  const windowMs = options.windowMs ?? 5000;
  const sampleMs = options.sampleMs ?? 20;
  const keep = options.keep ?? [EVENT_DATA_OWNER];
  const [userstat, performanceSchema] = await Promise.all([variable(admin, 'userstat'), variable(admin, 'performance_schema')]);
  // Accounts with a global grant are administrators: lockdown leaves them (and this check's own connection) alone.
  const administrators = new Set((await readEventGrants(admin, database)).filter((g) => g.level === 'global').map((g) => g.user));
  const tablesBefore = userstat ? await tableCounters(admin, database) : undefined;
  const usersBefore = userstat ? await userCommands(admin) : undefined;

  const touched = new Map<string, { user: string; table: string; operations: Set<string>; samples: number }>();
  const connected = new Map<string, number>();
  let samples = 0;
  const end = Date.now() + windowMs;
  do {
    const list = await rows<ProcessRow>(admin, 'SELECT ID AS id, USER AS user, INFO AS info FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [database]);
    samples++;
    const perUser = new Map<string, number>();
    for (const p of list) {
      perUser.set(p.user, (perUser.get(p.user) ?? 0) + 1);
      if (!p.info) continue;
      const { operation, tables } = statementTouches(p.info);
      for (const table of tables) {
        const key = `${p.user}\u0000${table}`;
        const entry = touched.get(key) ?? { user: p.user, table, operations: new Set<string>(), samples: 0 };
        entry.operations.add(operation);
        entry.samples++;
        touched.set(key, entry);
      }
    }
    for (const [user, n] of perUser) connected.set(user, Math.max(connected.get(user) ?? 0, n));
    if (Date.now() < end) await new Promise((r) => setTimeout(r, sampleMs));
  } while (Date.now() < end);

  let tableActivity: LockdownPreflight['table_activity'] = null;
  let activeUsers: string[] | null = null;
  if (tablesBefore && usersBefore) {
    const [tablesAfter, usersAfter] = await Promise.all([tableCounters(admin, database), userCommands(admin)]);
    tableActivity = Object.fromEntries(
      EVENT_DATA_TABLES.map((t) => {
        const a = tablesAfter.get(t);
        const b = tablesBefore.get(t);
        return [t, { rows_read: Math.max(0, (a?.read ?? 0) - (b?.read ?? 0)), rows_changed: Math.max(0, (a?.changed ?? 0) - (b?.changed ?? 0)) }];
      }),
    );
    activeUsers = [...usersAfter].filter(([u, n]) => n > (usersBefore.get(u) ?? 0)).map(([u]) => u).sort();
  }

  const list: TouchedTable[] = [...touched.values()]
    .map((e) => {
      const operations = [...e.operations].sort();
      const allowed = administrators.has(e.user) || operations.every((op) => allowedUnderLockdown(e.user, e.table, op, keep));
      return { user: e.user, table: e.table, operations, samples: e.samples, allowed };
    })
    .sort((a, b) => a.user.localeCompare(b.user) || a.table.localeCompare(b.table));
  const offenders = [...new Set(list.filter((t) => !t.allowed).map((t) => t.user))].sort();
  return {
    database,
    window_ms: windowMs,
    samples,
    sources: { processlist: true, userstat, performance_schema: performanceSchema },
    touched: list,
    offenders,
    connected: [...connected].map(([user, connections]) => ({ user, connections })).sort((a, b) => a.user.localeCompare(b.user)),
    table_activity: tableActivity,
    active_users: activeUsers,
    ok: offenders.length === 0,
  };
}

/** One line per user cut off, for refusals and the CLI: `dobe (SELECT on events, seen in 12 of 250 samples)`. */
export function describeOffenders(p: LockdownPreflight): string[] {
  return p.offenders.map((user) => {
    const mine = p.touched.filter((t) => t.user === user && !t.allowed);
    return `${user} (${mine.map((t) => `${t.operations.join('/')} on ${t.table}`).join(', ')}, seen in ${Math.max(...mine.map((t) => t.samples))} of ${p.samples} samples)`;
  });
}
