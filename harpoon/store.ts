/**
 * Harpoon's SQL. Every statement is parameterised; the only variable part
 * of any SQL text is the number of placeholders, never input.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { isLockFailure } from '../lib/db/deadlock.ts';
import type { Catalog } from './catalog.ts';
import { isoFromSql } from './time.ts';
import type { Change, ChangeKind, EventStatus, HarpoonEvent } from './types.ts';
import type { EventFilter } from './validate.ts';

/** The columns of `events` Harpoon reads, in one place. */
export const EVENT_COLUMNS =
  'id, type, status, region_id, server_id, droplet_id, customer_id, args, message, harpoon_key, created_at, available_at, started_at, finished_at';

export interface EventRow {
  id: number;
  type: HarpoonEvent['type'];
  status: EventStatus;
  region_id: number;
  server_id: number | null;
  droplet_id: number | null;
  customer_id: number | null;
  args: string | null;
  message: string | null;
  harpoon_key: string | null;
  created_at: string;
  available_at: string | null;
  started_at: string | null;
  finished_at: string | null;
}

function parseArgs(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

export function toEvent(row: EventRow, catalog: Catalog): HarpoonEvent {
  return {
    id: Number(row.id),
    type: row.type,
    status: row.status,
    region: catalog.regionSlug(row.region_id),
    region_id: row.region_id,
    server_id: row.server_id,
    droplet_id: row.droplet_id,
    customer_id: row.customer_id,
    args: parseArgs(row.args),
    message: row.message,
    key: row.harpoon_key,
    created_at: isoFromSql(row.created_at)!,
    available_at: isoFromSql(row.available_at),
    started_at: isoFromSql(row.started_at),
    finished_at: isoFromSql(row.finished_at),
  };
}

/** MySQL's "a foreign key names no row": the caller's ids are wrong, not the server. */
export function isForeignKeyError(err: unknown): boolean {
  const errno = (err as { errno?: unknown }).errno;
  return errno === 1452 || errno === 1216;
}

/** A duplicate key (another batch created the same key first), a deadlock or a lock wait timeout. */
export function isRetryable(err: unknown): boolean {
  return (err as { errno?: unknown }).errno === 1062 || isLockFailure(err);
}

// ---- reads -----------------------------------------------------------------------------------

export async function readEvents(pool: Pool, ids: number[]): Promise<EventRow[]> {
  if (ids.length === 0) return [];
  const [rows] = await pool.query(`SELECT ${EVENT_COLUMNS} FROM events WHERE id IN (?)`, [ids]);
  return rows as EventRow[];
}

/** Events by filter in id order after `afterId` (keyset pagination). */
export async function listEvents(pool: Pool, filter: EventFilter, regionIds: number[], afterId: number, limit: number): Promise<EventRow[]> {
  const where: string[] = ['id > ?'];
  const params: unknown[] = [afterId];
  if (regionIds.length > 0) {
    where.push('region_id IN (?)');
    params.push(regionIds);
  }
  if (filter.types.size > 0) {
    where.push('type IN (?)');
    params.push([...filter.types]);
  }
  if (filter.statuses.size > 0) {
    where.push('status IN (?)');
    params.push([...filter.statuses]);
  }
  if (filter.unscheduled) where.push("type = 'create' AND server_id IS NULL");
  if (filter.serverId !== undefined) {
    where.push('server_id = ?');
    params.push(filter.serverId);
  }
  if (filter.dropletId !== undefined) {
    where.push('droplet_id = ?');
    params.push(filter.dropletId);
  }
  params.push(limit);
  const [rows] = await pool.query(`SELECT ${EVENT_COLUMNS} FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`, params);
  return rows as EventRow[];
}

/** A customer's (or every) action, newest first, DO-style pages; `droplet` narrows to one droplet. */
export async function listActions(
  pool: Pool,
  scope: { customerId?: number; dropletId?: number },
  limit: number,
  offset: number,
): Promise<{ rows: EventRow[]; total: number }> {
  const where: string[] = ['1 = 1'];
  const params: unknown[] = [];
  if (scope.customerId !== undefined) {
    where.push('customer_id = ?');
    params.push(scope.customerId);
  }
  if (scope.dropletId !== undefined) {
    where.push('droplet_id = ?');
    params.push(scope.dropletId);
  }
  const [rows] = await pool.query(`SELECT ${EVENT_COLUMNS} FROM events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ? OFFSET ?`, [...params, limit, offset]);
  const [counted] = await pool.query(`SELECT COUNT(*) AS n FROM events WHERE ${where.join(' AND ')}`, params);
  return { rows: rows as EventRow[], total: Number((counted as Array<{ n: number }>)[0]!.n) };
}

const LOG_COLUMNS = 'id, event_id, kind, type, status, region_id, server_id, payload, committed_at';

interface LogRow {
  id: number;
  event_id: number;
  kind: ChangeKind;
  type: HarpoonEvent['type'];
  status: EventStatus;
  region_id: number;
  server_id: number | null;
  payload: string;
  committed_at: string;
}

/** The event fields an event_log row keeps in columns; the payload holds the rest. */
export const LOG_COLUMN_FIELDS = ['id', 'type', 'status', 'region_id', 'server_id'] as const;

/**
 * The event fields a payload holds: every other field of an event, in the order toEvent builds them
 * (test/harpoon/store.test.ts fails when an event field is in neither list).
 */
export const LOG_PAYLOAD_FIELDS = ['region', 'droplet_id', 'customer_id', 'args', 'message', 'key', 'created_at', 'available_at', 'started_at', 'finished_at'] as const;

/**
 * An event_log payload: the event's fields that are not columns of the row,
 * null fields left out. A third of the bytes of the whole event, which makes
 * the log INSERT (half of every batch's server time) markedly cheaper.
 * Picked by name, not by walking Object.entries: a third of the cost, on
 * every row of every batch.
 */
export function logPayload(event: HarpoonEvent): string {
  const rest: Partial<Record<(typeof LOG_PAYLOAD_FIELDS)[number], unknown>> = {};
  for (const k of LOG_PAYLOAD_FIELDS) {
    const v = event[k];
    if (v !== null && v !== undefined) rest[k] = v;
  }
  return JSON.stringify(rest);
}

function toChange(row: LogRow): Change {
  // Rows written before payloads were compact hold the whole event: the spread gives the same event.
  const event: HarpoonEvent = {
    id: Number(row.event_id),
    type: row.type,
    status: row.status,
    region: '',
    region_id: row.region_id,
    server_id: row.server_id,
    droplet_id: null,
    customer_id: null,
    args: null,
    message: null,
    key: null,
    created_at: '',
    available_at: null,
    started_at: null,
    finished_at: null,
    ...(JSON.parse(row.payload) as Partial<HarpoonEvent>),
  };
  return { cursor: Number(row.id), kind: row.kind, event, committed_at: isoFromSql(row.committed_at)! };
}

/** Log entries with after < cursor <= upto, in order. */
export async function readLog(pool: Pool | PoolConnection, after: number, upto: number, limit: number): Promise<Change[]> {
  const [rows] = await pool.query(`SELECT ${LOG_COLUMNS} FROM event_log WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`, [after, upto, limit]);
  return (rows as LogRow[]).map(toChange);
}

/** The newest `limit` entries, oldest first (a restarted replica's memory). */
export async function readLogTail(pool: Pool, limit: number): Promise<Change[]> {
  const [rows] = await pool.query(`SELECT ${LOG_COLUMNS} FROM event_log ORDER BY id DESC LIMIT ?`, [limit]);
  return (rows as LogRow[]).map(toChange).reverse();
}

/**
 * Everything committed after `after`, read while holding the log lock: no
 * writer is between allocating ids and committing, so nothing older than
 * what this returns can appear later.
 */
export async function readLogLocked(pool: Pool, after: number, limit: number): Promise<{ changes: Change[]; head: number }> {
  const conn = await pool.getConnection();
  try {
    await conn.query('BEGIN');
    try {
      await conn.query('SELECT id FROM harpoon_lock WHERE id = 1 FOR UPDATE');
      const [max] = await conn.query('SELECT COALESCE(MAX(id), 0) AS head FROM event_log');
      const head = Number((max as Array<{ head: number }>)[0]!.head);
      const changes = head > after ? await readLog(conn, after, head, limit) : [];
      return { changes, head };
    } finally {
      await conn.query('COMMIT').catch(() => {});
    }
  } finally {
    conn.release();
  }
}

export async function customerByTokenDigest(pool: Pool, digest: string): Promise<{ id: number; status: string } | undefined> {
  const [rows] = await pool.query('SELECT id, status FROM customers WHERE api_token_sha256 = ?', [digest]);
  return (rows as Array<{ id: number; status: string }>)[0];
}

/** MariaDB 10.5+ answers INSERT … RETURNING; MySQL does not. */
export async function supportsInsertReturning(pool: Pool): Promise<boolean> {
  const [rows] = await pool.query('SELECT VERSION() AS v');
  const version = String((rows as Array<{ v: string }>)[0]!.v);
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m || !/mariadb/i.test(version)) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 10 || (major === 10 && minor >= 5);
}
