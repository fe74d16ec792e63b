/**
 * Harpoon's SQL. Every statement is parameterised; the only variable part
 * of any SQL text is the number of placeholders, never input.
 */
import type { Pool, PoolConnection, ResultSetHeader } from 'mysql2/promise';
import type { StranglerError } from '../lib/errors.ts';
import type { Catalog } from './catalog.ts';
import { harpoonError } from './errors.ts';
import { isoFromSql, sqlTime } from './time.ts';
import type { Change, ChangeKind, CreateEventInput, CreateResult, EventStatus, HarpoonEvent, StatusChangeInput, StatusResult } from './types.ts';
import type { EventFilter } from './validate.ts';

/** The columns of `events` Harpoon reads, in one place. */
const EVENT_COLUMNS =
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

// ---- writes ----------------------------------------------------------------------------------

export type WriteOp =
  | { kind: 'create'; input: CreateEventInput; regionId: number }
  | { kind: 'change'; input: StatusChangeInput };

export type OpOutcome =
  | { ok: true; create: CreateResult }
  | { ok: true; status: StatusResult }
  | { ok: false; error: StranglerError };

export interface BatchResult {
  outcomes: OpOutcome[];
  /** The log entries this batch committed, in cursor order (increasing; not consecutive when auto_increment_increment > 1). */
  changes: Change[];
  statements: number;
}

/** pending → running → done | error; done and error are final. Repeating the current status is always allowed. */
export const TRANSITIONS: Record<EventStatus, readonly EventStatus[]> = {
  pending: ['running', 'error'],
  running: ['done', 'error'],
  done: [],
  error: [],
};

/**
 * Applies one change to a row in memory: the new row and what kind of log
 * entry it makes, `unchanged` for a harmless repeat, or a 4xx error.
 */
export function applyChange(row: EventRow, change: StatusChangeInput, now: string): { row: EventRow; kind: ChangeKind } | 'unchanged' | StranglerError {
  const next = { ...row };
  let placed = false;
  if (change.server_id !== undefined && change.server_id !== row.server_id) {
    if (row.server_id !== null) {
      return harpoonError('HARPOON_ERR_ALREADY_PLACED', `event ${row.id} is placed on hypervisor ${row.server_id}, not ${change.server_id}; nothing was changed`);
    }
    if (row.status !== 'pending') return harpoonError('HARPOON_ERR_ALREADY_PLACED', `event ${row.id} is ${row.status}; only a pending event can be placed`);
    next.server_id = change.server_id;
    next.available_at = now;
    placed = true;
  }
  let moved = false;
  if (change.status !== undefined && change.status !== row.status) {
    if (!TRANSITIONS[row.status].includes(change.status)) {
      const allowed = TRANSITIONS[row.status];
      return harpoonError(
        'HARPOON_ERR_ILLEGAL_TRANSITION',
        `event ${row.id} is ${row.status}; it cannot become ${change.status} (${allowed.length ? `allowed: ${allowed.join(', ')}` : `${row.status} is final`}); nothing was changed`,
      );
    }
    next.status = change.status;
    if (change.status === 'running') next.started_at ??= now;
    if (change.status === 'done' || change.status === 'error') next.finished_at = now;
    if (change.message !== undefined) next.message = change.message;
    moved = true;
  }
  if (!placed && !moved) return 'unchanged';
  return { row: next, kind: moved ? 'status' : 'placed' };
}

function sameRequest(row: EventRow, input: CreateEventInput, regionId: number): boolean {
  return row.type === input.type && row.region_id === regionId && row.droplet_id === (input.droplet_id ?? null);
}

/**
 * One group-commit transaction: the keyed creates' lookup, one multi-row
 * INSERT of the new events, one locking read and one UPDATE for every
 * status change, the log lock, one multi-row INSERT into event_log, COMMIT.
 * Two batches creating the same key at once: the second one's INSERT fails
 * on the unique index, and its requests are written again one by one,
 * which finds the first one's event.
 * A rule violation (illegal transition, key conflict) fails only its own op;
 * an SQL error rolls the whole batch back and is thrown.
 */
export async function writeBatch(conn: PoolConnection, ops: WriteOp[], catalog: Catalog, nowMs: number, returning: boolean): Promise<BatchResult> {
  const now = sqlTime(nowMs);
  const outcomes: Array<OpOutcome | undefined> = new Array(ops.length);
  const logRows: Array<{ row: EventRow; kind: ChangeKind }> = [];
  let statements = 0;
  const run = async <T>(sql: string, params: unknown[] = []): Promise<T> => {
    statements++;
    const [result] = await conn.query(sql, params);
    return result as T;
  };
  await run('BEGIN');
  try {

    const creates = ops.flatMap((op, i) => (op.kind === 'create' ? [{ op, i }] : []));
    const keys = creates.map((c) => c.op.input.key).filter((k): k is string => typeof k === 'string');
    const byKey = new Map<string, EventRow>();
    if (keys.length > 0) {
      for (const row of await run<EventRow[]>(`SELECT ${EVENT_COLUMNS} FROM events WHERE harpoon_key IN (?)`, [keys])) byKey.set(row.harpoon_key!, row);
    }
    const fresh: typeof creates = [];
    const seenKeys = new Map<string, number>();
    for (const c of creates) {
      const key = c.op.input.key;
      const existing = key ? byKey.get(key) : undefined;
      if (existing) {
        outcomes[c.i] = sameRequest(existing, c.op.input, c.op.regionId)
          ? { ok: true, create: { event: toEvent(existing, catalog), duplicate: true } }
          : { ok: false, error: harpoonError('HARPOON_ERR_KEY_CONFLICT', `key ${JSON.stringify(key)} already created event ${existing.id} (${existing.type}); nothing was written`) };
      } else if (key && seenKeys.has(key)) {
        // Two requests in one batch with the same key: the second is the first one's duplicate (resolved below).
        outcomes[c.i] = undefined;
      } else {
        if (key) seenKeys.set(key, c.i);
        fresh.push(c);
      }
    }
    const created = new Map<number, EventRow>();
    if (fresh.length > 0) {
      const rows: EventRow[] = fresh.map(({ op }) => {
        const server = op.input.server_id ?? null;
        return {
          id: 0,
          type: op.input.type,
          status: 'pending',
          region_id: op.regionId,
          server_id: server,
          droplet_id: op.input.droplet_id ?? null,
          customer_id: op.input.customer_id ?? null,
          args: op.input.args ? JSON.stringify(op.input.args) : null,
          message: op.input.message ?? null,
          harpoon_key: op.input.key ?? null,
          created_at: now,
          available_at: server === null ? null : now,
          started_at: null,
          finished_at: null,
        };
      });
      const values = rows.map((r) => [r.type, r.status, r.region_id, r.server_id, r.droplet_id, r.customer_id, r.args, r.message, r.harpoon_key, r.created_at, r.available_at]);
      const insertSql =
        'INSERT INTO events (type, status, region_id, server_id, droplet_id, customer_id, args, message, harpoon_key, created_at, available_at) VALUES ?';
      // Ids are read back, never computed from insertId: with auto_increment_increment > 1 (Galera) or
      // innodb_autoinc_lock_mode 2 a multi-row INSERT's ids are neither consecutive nor predictable.
      const ids = await insertReturningIds(run, insertSql, values, returning);
      rows.forEach((r, k) => (r.id = ids[k]!));
      for (const [k, { i }] of fresh.entries()) {
        const row = rows[k]!;
        created.set(i, row);
        outcomes[i] = { ok: true, create: { event: toEvent(row, catalog), duplicate: false } };
        logRows.push({ row, kind: 'created' });
      }
    }
    for (const c of creates) {
      if (outcomes[c.i] !== undefined) continue;
      const first = created.get(seenKeys.get(c.op.input.key!)!)!;
      outcomes[c.i] = sameRequest(first, c.op.input, c.op.regionId)
        ? { ok: true, create: { event: toEvent(first, catalog), duplicate: true } }
        : { ok: false, error: harpoonError('HARPOON_ERR_KEY_CONFLICT', `key ${JSON.stringify(c.op.input.key)} already created event ${first.id}; nothing was written`) };
    }

    const changes = ops.flatMap((op, i) => (op.kind === 'change' ? [{ op, i }] : []));
    if (changes.length > 0) {
      const ids = [...new Set(changes.map((c) => c.op.input.id))];
      const current = new Map<number, EventRow>();
      for (const row of await run<EventRow[]>(`SELECT ${EVENT_COLUMNS} FROM events WHERE id IN (?) FOR UPDATE`, [ids])) current.set(Number(row.id), row);
      const dirty = new Map<number, EventRow>();
      for (const { op, i } of changes) {
        const row = current.get(op.input.id);
        if (!row) {
          outcomes[i] = { ok: false, error: harpoonError('HARPOON_ERR_NOT_FOUND', `event ${op.input.id} does not exist; nothing was changed`) };
          continue;
        }
        const applied = applyChange(row, op.input, now);
        if (applied === 'unchanged') {
          outcomes[i] = { ok: true, status: { event: toEvent(row, catalog), changed: false } };
        } else if ('kind' in applied) {
          current.set(row.id, applied.row);
          dirty.set(row.id, applied.row);
          logRows.push(applied);
          outcomes[i] = { ok: true, status: { event: toEvent(applied.row, catalog), changed: true } };
        } else {
          outcomes[i] = { ok: false, error: applied };
        }
      }
      if (dirty.size > 0) {
        // One UPDATE for every changed row: a derived table of the new values joined on id.
        const rows = [...dirty.values()];
        const derived = rows
          .map((_, k) => (k === 0 ? 'SELECT ? AS id, ? AS status, ? AS server_id, ? AS available_at, ? AS started_at, ? AS finished_at, ? AS message' : 'SELECT ?, ?, ?, ?, ?, ?, ?'))
          .join(' UNION ALL ');
        await run(
          `UPDATE events e JOIN (${derived}) v ON e.id = v.id SET e.status = v.status, e.server_id = v.server_id, ` +
            'e.available_at = v.available_at, e.started_at = v.started_at, e.finished_at = v.finished_at, e.message = v.message',
          rows.flatMap((r) => [r.id, r.status, r.server_id, r.available_at, r.started_at, r.finished_at, r.message]),
        );
      }
    }

    const entries: Change[] = [];
    if (logRows.length > 0) {
      // Taken last, held to COMMIT, by every writer of every replica: log ids are allocated and committed in
      // one order. Everything before it (the events rows) runs concurrently with other batches; a batch
      // holding this lock never waits for another's row locks, since every batch takes it last.
      await run('SELECT id FROM harpoon_lock WHERE id = 1 FOR UPDATE');
      const snapshots = logRows.map(({ row, kind }) => ({ kind, event: toEvent(row, catalog) }));
      const logIds = await insertReturningIds(
        run,
        'INSERT INTO event_log (event_id, kind, region_id, type, status, server_id, payload, committed_at) VALUES ?',
        logRows.map(({ row, kind }, k) => [row.id, kind, row.region_id, row.type, row.status, row.server_id, JSON.stringify(snapshots[k]!.event), now]),
        returning,
      );
      const committedAt = isoFromSql(now)!;
      snapshots.forEach((s, k) => entries.push({ cursor: logIds[k]!, kind: s.kind, event: s.event, committed_at: committedAt }));
    }
    await run('COMMIT');
    return { outcomes: outcomes as OpOutcome[], changes: entries, statements };
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Inserts `values` (one array per row) and answers each row's id, in order.
 * With RETURNING (MariaDB 10.5+) one statement, the server naming each id;
 * without it one single-row INSERT per row, whose insertId is that row's id
 * whatever the server's auto_increment settings.
 */
async function insertReturningIds(
  run: <T>(sql: string, params?: unknown[]) => Promise<T>,
  insertSql: string,
  values: unknown[][],
  returning: boolean,
): Promise<number[]> {
  if (returning) {
    const rows = await run<Array<{ id: number | string }>>(`${insertSql} RETURNING id`, [values]);
    if (rows.length !== values.length) throw new Error(`INSERT … RETURNING answered ${rows.length} ids for ${values.length} rows`);
    return rows.map((r) => Number(r.id));
  }
  const ids: number[] = [];
  for (const row of values) ids.push(Number((await run<ResultSetHeader>(insertSql, [[row]])).insertId));
  return ids;
}

/** MySQL's "a foreign key names no row": the caller's ids are wrong, not the server. */
export function isForeignKeyError(err: unknown): boolean {
  const errno = (err as { errno?: unknown }).errno;
  return errno === 1452 || errno === 1216;
}

/** A duplicate key (another batch created the same key first), a deadlock or a lock wait timeout. */
export function isRetryable(err: unknown): boolean {
  const errno = (err as { errno?: unknown }).errno;
  return errno === 1062 || errno === 1213 || errno === 1205;
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

interface LogRow {
  id: number;
  kind: ChangeKind;
  payload: string;
  committed_at: string;
}

function toChange(row: LogRow): Change {
  return { cursor: Number(row.id), kind: row.kind, event: JSON.parse(row.payload) as HarpoonEvent, committed_at: isoFromSql(row.committed_at)! };
}

/** Log entries with after < cursor <= upto, in order. */
export async function readLog(pool: Pool | PoolConnection, after: number, upto: number, limit: number): Promise<Change[]> {
  const [rows] = await pool.query('SELECT id, kind, payload, committed_at FROM event_log WHERE id > ? AND id <= ? ORDER BY id LIMIT ?', [after, upto, limit]);
  return (rows as LogRow[]).map(toChange);
}

/** The newest `limit` entries, oldest first (a restarted replica's memory). */
export async function readLogTail(pool: Pool, limit: number): Promise<Change[]> {
  const [rows] = await pool.query('SELECT id, kind, payload, committed_at FROM event_log ORDER BY id DESC LIMIT ?', [limit]);
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
