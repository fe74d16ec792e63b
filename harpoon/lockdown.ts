/**
 * The `lockdown` step: make "Harpoon is the sole accessor of event data" a
 * fact the MySQL server enforces. Event data is every table that carries
 * events or their payloads (domain/event-data.ts: `events`, `event_log`,
 * `event_outbox`), all treated alike.
 *
 * - `lockdown()` revokes every table-level privilege on each event-data
 *   table from every account but the kept ones (Harpoon's), except the
 *   hand-offs of domain/event-data.ts (Cloud's SELECT, INSERT, UPDATE and DELETE on
 *   its own outbox: the write-ahead of event-writes, which holds only what
 *   Cloud itself wrote). An account whose schema-level grant (`<db>.*`)
 *   covers them loses it and gets the same privileges table by table on
 *   every other table, so it keeps everything but event data. Each change is recorded in `harpoon_lockdown` before it is
 *   made, so an interrupted lockdown is finished or undone by running
 *   either command again.
 * - `rollbackLockdown()` undoes exactly what was recorded: the per-table
 *   grants it added are revoked, the revoked grants are granted back.
 * - `readEventGrants()` says who holds what on event data now, from
 *   information_schema (TABLE_PRIVILEGES, SCHEMA_PRIVILEGES,
 *   USER_PRIVILEGES); global (`*.*`) grants are listed, never changed: they
 *   belong to administrators.
 *
 * Must run as an account that may GRANT and REVOKE (the admin/root user).
 *
 * @example
 *   const { revoked } = await lockdown(admin, 'strangler_demo');
 *   console.table(await readEventGrants(admin, 'strangler_demo'));
 *   await rollbackLockdown(admin, 'strangler_demo');
 */
import type { Knex } from 'knex';
import { harpoonError } from './errors.ts';
import { allowedUnderLockdown, EVENT_DATA_OWNER, EVENT_DATA_TABLES } from '../domain/event-data.ts';

export type GrantLevel = 'table' | 'schema' | 'global';

export interface EventGrant {
  /** As information_schema spells it: 'cloud'@'%'. */
  grantee: string;
  /** The event-data table (table level), or '*' (schema and global level). */
  table: string;
  user: string;
  host: string;
  level: GrantLevel;
  privilege: string;
}

export interface LockdownResult {
  /** Grants taken away: on an event-data table (level table) or on the whole schema (level schema). */
  revoked: Array<{ grantee: string; level: 'table' | 'schema'; privilege: string; table?: string }>;
  /** Per-table grants added in place of a revoked schema grant. */
  granted: Array<{ grantee: string; table: string; privilege: string }>;
}

/** Privileges that exist at table level; others on a schema (EXECUTE, LOCK TABLES, …) do not reach rows of events. */
const TABLE_PRIVILEGES = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'CREATE',
  'DROP',
  'REFERENCES',
  'INDEX',
  'ALTER',
  'CREATE VIEW',
  'SHOW VIEW',
  'TRIGGER',
  'DELETE HISTORY',
]);
const ROW_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'ALL PRIVILEGES'];
/** A privilege name goes into GRANT/REVOKE as a keyword: only the fixed vocabulary above may. */
function keyword(privilege: string): string {
  if (!TABLE_PRIVILEGES.has(privilege)) throw harpoonError('HARPOON_ERR_LOCKDOWN', `unexpected privilege ${JSON.stringify(privilege)}`);
  return privilege;
}

export function parseGrantee(grantee: string): { user: string; host: string } {
  const m = /^'((?:[^']|'')*)'@'((?:[^']|'')*)'$/.exec(grantee);
  if (!m) throw harpoonError('HARPOON_ERR_LOCKDOWN', `cannot read grantee ${JSON.stringify(grantee)}`);
  return { user: m[1]!.replace(/''/g, "'"), host: m[2]!.replace(/''/g, "'") };
}

async function rows<T>(admin: Knex, sql: string, params: Knex.RawBinding[]): Promise<T[]> {
  const [result] = (await admin.raw(sql, params)) as [T[]];
  return result;
}

/** Who can touch `<database>`'s event-data tables, at which level, with which privilege. */
export async function readEventGrants(admin: Knex, database: string): Promise<EventGrant[]> {
  const table = await rows<{ g: string; p: string; t: string }>(
    admin,
    'SELECT GRANTEE AS g, PRIVILEGE_TYPE AS p, TABLE_NAME AS t FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)',
    [database, [...EVENT_DATA_TABLES]],
  );
  const schema = await rows<{ g: string; p: string }>(
    admin,
    'SELECT GRANTEE AS g, PRIVILEGE_TYPE AS p FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = ?',
    [database],
  );
  const global = await rows<{ g: string; p: string }>(
    admin,
    'SELECT GRANTEE AS g, PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN (?)',
    [ROW_PRIVILEGES],
  );
  const out: EventGrant[] = [];
  const add = (level: GrantLevel, list: Array<{ g: string; p: string; t?: string }>) => {
    for (const r of list) {
      if (level !== 'global' && !TABLE_PRIVILEGES.has(r.p)) continue;
      out.push({ grantee: r.g, ...parseGrantee(r.g), table: r.t ?? '*', level, privilege: r.p });
    }
  };
  add('table', table);
  add('schema', schema);
  add('global', global);
  return out.sort(
    (a, b) => a.grantee.localeCompare(b.grantee) || a.level.localeCompare(b.level) || a.table.localeCompare(b.table) || a.privilege.localeCompare(b.privilege),
  );
}

/** Whether lockdown leaves `grant` in place: Harpoon's (the kept accounts), a hand-off (domain/event-data.ts), or an administrator's global grant. */
export function allowedAfterLockdown(grant: EventGrant, keep: readonly string[] = [EVENT_DATA_OWNER]): boolean {
  if (grant.level === 'global' || keep.includes(grant.user)) return true;
  return grant.level === 'table' && allowedUnderLockdown(grant.user, grant.table, grant.privilege, keep);
}

async function record(admin: Knex, database: string, row: { grantee: string; action: 'revoked' | 'granted'; table_name: string | null; privilege: string }): Promise<void> {
  await admin.withSchema(database).table('harpoon_lockdown').insert(row);
}

async function change(admin: Knex, sql: string, params: Knex.RawBinding[], what: string): Promise<void> {
  try {
    await admin.raw(sql, params);
  } catch (cause) {
    throw harpoonError('HARPOON_ERR_LOCKDOWN', `${what} failed: ${(cause as Error).message}`, cause);
  }
}

/**
 * Revokes every grant on events from every account but `keep` (default:
 * the `harpoon` user). Idempotent: a second run finds nothing to revoke.
 */
export async function lockdown(
  admin: Knex,
  database: string,
  options: { keep?: string[] } = {},
): Promise<LockdownResult> {
  const keep = options.keep ?? [EVENT_DATA_OWNER];
  const result: LockdownResult = { revoked: [], granted: [] };
  const grants = (await readEventGrants(admin, database)).filter((g) => !allowedAfterLockdown(g, keep));
  const eventData = new Set<string>(EVENT_DATA_TABLES);
  const tables = (await rows<{ t: string }>(admin, 'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = ?', [database, 'BASE TABLE']))
    .map((r) => r.t)
    .filter((t) => !eventData.has(t));
  for (const g of grants) {
    const p = keyword(g.privilege);
    if (g.level === 'table') {
      await record(admin, database, { grantee: g.grantee, action: 'revoked', table_name: g.table, privilege: p });
      await change(admin, `REVOKE ${p} ON ??.?? FROM ?@?`, [database, g.table, g.user, g.host], `REVOKE ${p} ON ${g.table} FROM ${g.grantee}`);
      result.revoked.push({ grantee: g.grantee, level: 'table', privilege: p, ...(g.table === 'events' ? {} : { table: g.table }) });
      continue;
    }
    // Schema level: the same privilege on every other table, then the schema grant goes.
    const held = new Set(
      (
        await rows<{ t: string }>(
          admin,
          'SELECT TABLE_NAME AS t FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = ? AND GRANTEE = ? AND PRIVILEGE_TYPE = ?',
          [database, g.grantee, p],
        )
      ).map((r) => r.t),
    );
    for (const table of tables) {
      if (held.has(table)) continue;
      await record(admin, database, { grantee: g.grantee, action: 'granted', table_name: table, privilege: p });
      await change(admin, `GRANT ${p} ON ??.?? TO ?@?`, [database, table, g.user, g.host], `GRANT ${p} ON ${table} TO ${g.grantee}`);
      result.granted.push({ grantee: g.grantee, table, privilege: p });
    }
    await record(admin, database, { grantee: g.grantee, action: 'revoked', table_name: null, privilege: p });
    await change(admin, `REVOKE ${p} ON ??.* FROM ?@?`, [database, g.user, g.host], `REVOKE ${p} ON ${database}.* FROM ${g.grantee}`);
    result.revoked.push({ grantee: g.grantee, level: 'schema', privilege: p });
  }
  return result;
}

/** Restores exactly what lockdown() recorded, newest first, and forgets it. */
export async function rollbackLockdown(admin: Knex, database: string): Promise<LockdownResult> {
  const recorded = (await admin.withSchema(database).table('harpoon_lockdown').orderBy('id', 'desc')) as Array<{
    id: number;
    grantee: string;
    action: 'revoked' | 'granted';
    table_name: string | null;
    privilege: string;
  }>;
  const result: LockdownResult = { revoked: [], granted: [] };
  for (const r of recorded) {
    const { user, host } = parseGrantee(r.grantee);
    const p = keyword(r.privilege);
    if (r.action === 'granted') {
      await change(admin, `REVOKE ${p} ON ??.?? FROM ?@?`, [database, r.table_name!, user, host], `REVOKE ${p} ON ${r.table_name} FROM ${r.grantee}`).catch((err: unknown) => {
        // Already gone (revoked by hand, or the step never ran): nothing to undo.
        if (!/There is no such grant/i.test((err as Error).message)) throw err;
      });
      result.granted.push({ grantee: r.grantee, table: r.table_name!, privilege: p });
    } else if (r.table_name === null) {
      await change(admin, `GRANT ${p} ON ??.* TO ?@?`, [database, user, host], `GRANT ${p} ON ${database}.* TO ${r.grantee}`);
      result.revoked.push({ grantee: r.grantee, level: 'schema', privilege: p });
    } else {
      await change(admin, `GRANT ${p} ON ??.?? TO ?@?`, [database, r.table_name!, user, host], `GRANT ${p} ON ${r.table_name} TO ${r.grantee}`);
      result.revoked.push({ grantee: r.grantee, level: 'table', privilege: p });
    }
    await admin.withSchema(database).table('harpoon_lockdown').where('id', r.id).del();
  }
  return result;
}
