/**
 * Harpoon's writes: one group-commit batch of creates and status changes
 * as one transaction, with its event_log entries. Every statement is
 * parameterised.
 */
import type { PoolConnection, ResultSetHeader } from 'mysql2/promise';
import type { StranglerError } from '../lib/errors.ts';
import type { Catalog } from './catalog.ts';
import { dropletPlacesStatement, isAddressedToDroplet, misaddressed, type DropletPlaceRow } from './droplet-servers.ts';
import { harpoonError } from './errors.ts';
import { EVENT_COLUMNS, logPayload, toEvent, type EventRow } from './store.ts';
import { isoFromSql, sqlTime } from './time.ts';
import type { Change, ChangeKind, CreateEventInput, CreateResult, EventStatus, HarpoonEvent, StatusChangeInput, StatusResult } from './types.ts';

export type WriteOp =
  | { kind: 'create'; input: CreateEventInput; regionId: number }
  | {
      kind: 'change';
      input: StatusChangeInput;
      /**
       * A region-bound token's change (a router's): refused with HARPOON_ERR_FORBIDDEN when the
       * event is in another region, checked on the row locked in this transaction, and then every
       * change of the same `request` is refused too, so that request writes nothing.
       */
      only?: { regionId: number; token: string; request: object };
    };

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

/** One statement of a round trip. */
interface Statement {
  sql: string;
  params?: unknown[];
}

/**
 * One group-commit transaction in two round trips (three when creates carry
 * keys), each a multi-statement query, so neither the batch nor the log
 * lock waits on the network between statements:
 *   1. BEGIN; [SELECT the keyed creates' events]; [SELECT where the event
 *      data puts the droplets that non-create events name]; [INSERT the new
 *      events RETURNING id, when neither of those was needed]; [SELECT …
 *      FOR UPDATE the rows to change]
 *   2. (keyed creates, or non-create events for droplets) INSERT the new
 *      events that passed RETURNING id; one misaddressed
 *      (HARPOON_ERR_WRONG_SERVER, harpoon/droplet-servers.ts) is not inserted
 *   3. [UPDATE the changed rows]; SELECT the log lock FOR UPDATE; INSERT
 *      into event_log RETURNING id; COMMIT
 * Ids come back from the server (RETURNING), never computed from insertId.
 * Two batches creating the same key at once: the second one's INSERT fails
 * on the unique index, and its requests are written again one by one,
 * which finds the first one's event.
 * A rule violation (illegal transition, key conflict) fails only its own op;
 * an SQL error rolls the whole batch back and is thrown.
 * `conn` must allow multiple statements (createMysqlPool's `multipleStatements`).
 */
export async function writeBatch(conn: PoolConnection, ops: WriteOp[], catalog: Catalog, nowMs: number, returning: boolean): Promise<BatchResult> {
  const now = sqlTime(nowMs);
  const outcomes: Array<OpOutcome | undefined> = new Array(ops.length);
  /** Each entry's event as served (made once: the outcome and the log entry share it). */
  const logRows: Array<{ row: EventRow; kind: ChangeKind; event: HarpoonEvent }> = [];
  let statements = 0;
  /** Sends the statements as one query; one result per statement. */
  const trip = async (batch: Statement[]): Promise<unknown[]> => {
    statements += batch.length;
    const params: unknown[] = [];
    for (const s of batch) if (s.params) params.push(...s.params);
    const [result] = await conn.query(batch.map((s) => s.sql).join(';\n'), params);
    return batch.length === 1 ? [result] : (result as unknown[]);
  };

  const creates = ops.flatMap((op, i) => (op.kind === 'create' ? [{ op, i }] : []));
  const keys = creates.map((c) => c.op.input.key).filter((k): k is string => typeof k === 'string');
  const changes = ops.flatMap((op, i) => (op.kind === 'change' ? [{ op, i }] : []));
  const changeIds = [...new Set(changes.map((c) => c.op.input.id))];

  const newRow = (op: Extract<WriteOp, { kind: 'create' }>): EventRow => {
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
  };
  const insertEvents = (rows: EventRow[]): Statement[] =>
    insertStatements(
      'INSERT INTO events (type, status, region_id, server_id, droplet_id, customer_id, args, message, harpoon_key, created_at, available_at) VALUES ?',
      rows.map((r) => [r.type, r.status, r.region_id, r.server_id, r.droplet_id, r.customer_id, r.args, r.message, r.harpoon_key, r.created_at, r.available_at]),
      returning,
    );

  // A non-create event for a droplet is checked against where the event data puts the droplet
  // (harpoon/droplet-servers.ts) before anything is inserted, in this transaction.
  const addressed = creates.filter(({ op }) => isAddressedToDroplet((op as Extract<WriteOp, { kind: 'create' }>).input));
  // Without keys or such events every create is new and allowed: its INSERT rides in the first round trip.
  const deferred = keys.length > 0 || addressed.length > 0;
  const early = deferred ? [] : creates;
  const earlyRows = early.map(({ op }) => newRow(op as Extract<WriteOp, { kind: 'create' }>));
  const first: Statement[] = [{ sql: 'BEGIN' }];
  const keyedAt = first.length;
  if (keys.length > 0) first.push({ sql: `SELECT ${EVENT_COLUMNS} FROM events WHERE harpoon_key IN (?)`, params: [keys] });
  const placesAt = first.length;
  if (addressed.length > 0) {
    const droplets = [...new Set(creates.flatMap(({ op }) => { const d = (op as Extract<WriteOp, { kind: 'create' }>).input.droplet_id; return d === undefined || d === null ? [] : [d]; }))];
    first.push(dropletPlacesStatement(droplets));
  }
  const insertAt = first.length;
  if (earlyRows.length > 0) first.push(...insertEvents(earlyRows));
  const lockedAt = first.length;
  if (changeIds.length > 0) first.push({ sql: `SELECT ${EVENT_COLUMNS} FROM events WHERE id IN (?) FOR UPDATE`, params: [changeIds] });
  try {
    const results = await trip(first);

    const created = new Map<number, EventRow>();
    const record = (fresh: Array<{ i: number }>, rows: EventRow[], ids: number[]) => {
      for (const [k, { i }] of fresh.entries()) {
        const row = rows[k]!;
        row.id = ids[k]!;
        created.set(i, row);
        const event = toEvent(row, catalog);
        outcomes[i] = { ok: true, create: { event, duplicate: false } };
        logRows.push({ row, kind: 'created', event });
      }
    };
    if (earlyRows.length > 0) record(early, earlyRows, returnedIds(results.slice(insertAt, lockedAt), returning));

    if (deferred) {
      const byKey = new Map<string, EventRow>();
      if (keys.length > 0) for (const row of results[keyedAt] as EventRow[]) byKey.set(row.harpoon_key!, row);
      const refused =
        addressed.length > 0
          ? misaddressed(creates.map(({ op, i }) => ({ index: i, input: (op as Extract<WriteOp, { kind: 'create' }>).input })), results[placesAt] as DropletPlaceRow[])
          : new Map<number, StranglerError>();
      const fresh: typeof creates = [];
      const seenKeys = new Map<string, number>();
      for (const c of creates) {
        const key = c.op.input.key;
        const existing = key ? byKey.get(key) : undefined;
        if (existing) {
          outcomes[c.i] = sameRequest(existing, c.op.input, c.op.regionId)
            ? { ok: true, create: { event: toEvent(existing, catalog), duplicate: true } }
            : { ok: false, error: harpoonError('HARPOON_ERR_KEY_CONFLICT', `key ${JSON.stringify(key)} already created event ${existing.id} (${existing.type}); nothing was written`) };
        } else if (refused.has(c.i)) {
          outcomes[c.i] = { ok: false, error: refused.get(c.i)! };
        } else if (key && seenKeys.has(key)) {
          // Two requests in one batch with the same key: the second is the first one's duplicate (resolved below).
          outcomes[c.i] = undefined;
        } else {
          if (key) seenKeys.set(key, c.i);
          fresh.push(c);
        }
      }
      if (fresh.length > 0) {
        const rows = fresh.map(({ op }) => newRow(op as Extract<WriteOp, { kind: 'create' }>));
        record(fresh, rows, returnedIds(await trip(insertEvents(rows)), returning));
      }
      for (const c of creates) {
        if (outcomes[c.i] !== undefined) continue;
        const firstOne = created.get(seenKeys.get(c.op.input.key!)!)!;
        outcomes[c.i] = sameRequest(firstOne, c.op.input, c.op.regionId)
          ? { ok: true, create: { event: toEvent(firstOne, catalog), duplicate: true } }
          : { ok: false, error: harpoonError('HARPOON_ERR_KEY_CONFLICT', `key ${JSON.stringify(c.op.input.key)} already created event ${firstOne.id}; nothing was written`) };
      }
    }

    const last: Statement[] = [];
    if (changes.length > 0) {
      const current = new Map<number, EventRow>();
      for (const row of results[lockedAt] as EventRow[]) current.set(Number(row.id), row);
      const refused = refusedRequests(changes.map(({ op }) => op as Extract<WriteOp, { kind: 'change' }>), current, catalog);
      const dirty = new Map<number, EventRow>();
      for (const { op, i } of changes) {
        const { input, only } = op as Extract<WriteOp, { kind: 'change' }>;
        const refusal = only && refused.get(only.request);
        if (refusal) {
          outcomes[i] = { ok: false, error: refusal };
          continue;
        }
        const row = current.get(input.id);
        if (!row) {
          outcomes[i] = { ok: false, error: harpoonError('HARPOON_ERR_NOT_FOUND', `event ${input.id} does not exist; nothing was changed`) };
          continue;
        }
        const applied = applyChange(row, input, now);
        if (applied === 'unchanged') {
          outcomes[i] = { ok: true, status: { event: toEvent(row, catalog), changed: false } };
        } else if ('kind' in applied) {
          current.set(row.id, applied.row);
          dirty.set(row.id, applied.row);
          const event = toEvent(applied.row, catalog);
          logRows.push({ ...applied, event });
          outcomes[i] = { ok: true, status: { event, changed: true } };
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
        last.push({
          sql:
            `UPDATE events e JOIN (${derived}) v ON e.id = v.id SET e.status = v.status, e.server_id = v.server_id, ` +
            'e.available_at = v.available_at, e.started_at = v.started_at, e.finished_at = v.finished_at, e.message = v.message',
          params: rows.flatMap((r) => [r.id, r.status, r.server_id, r.available_at, r.started_at, r.finished_at, r.message]),
        });
      }
    }

    const entries: Change[] = [];
    const logAt = last.length + 1;
    if (logRows.length > 0) {
      // Taken last, held to COMMIT, by every writer of every replica: log ids are allocated and committed in
      // one order. Everything before it (the events rows) runs concurrently with other batches; a batch
      // holding this lock never waits for another's row locks, since every batch takes it last.
      last.push({ sql: 'SELECT id FROM harpoon_lock WHERE id = 1 FOR UPDATE' });
      last.push(
        ...insertStatements(
          'INSERT INTO event_log (event_id, kind, region_id, type, status, server_id, payload, committed_at) VALUES ?',
          logRows.map(({ row, kind, event }) => [row.id, kind, row.region_id, row.type, row.status, row.server_id, logPayload(event), now]),
          returning,
        ),
      );
    }
    last.push({ sql: 'COMMIT' });
    const done = await trip(last);
    if (logRows.length > 0) {
      const logIds = returnedIds(done.slice(logAt, done.length - 1), returning);
      const committedAt = isoFromSql(now)!;
      logRows.forEach((s, k) => entries.push({ cursor: logIds[k]!, kind: s.kind, event: s.event, committed_at: committedAt }));
    }
    return { outcomes: outcomes as OpOutcome[], changes: entries, statements };
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * The requests of region-bound tokens that name an event of another region,
 * each with its refusal: every change of such a request is refused.
 */
function refusedRequests(changes: Array<Extract<WriteOp, { kind: 'change' }>>, rows: ReadonlyMap<number, EventRow>, catalog: Catalog): Map<object, StranglerError> {
  const refused = new Map<object, StranglerError>();
  for (const { input, only } of changes) {
    const row = rows.get(input.id);
    if (!only || !row || row.region_id === only.regionId || refused.has(only.request)) continue;
    const where = (id: number) => catalog.regionSlug(id);
    refused.set(
      only.request,
      harpoonError('HARPOON_ERR_FORBIDDEN', `event ${row.id} is in ${where(row.region_id)}; the token "${only.token}" is bound to ${where(only.regionId)} and may change only its events; nothing of this request was written`),
    );
  }
  return refused;
}

/**
 * The statements that insert `values` (one array per row) so that the
 * server answers each row's id: with RETURNING (MariaDB 10.5+) one
 * multi-row INSERT; without it (MySQL) one single-row INSERT per row, whose
 * insertId is that row's id whatever the server's auto_increment settings.
 */
function insertStatements(insertSql: string, values: unknown[][], returning: boolean): Statement[] {
  if (returning) return [{ sql: `${insertSql} RETURNING id`, params: [values] }];
  return values.map((row) => ({ sql: insertSql, params: [[row]] }));
}

/** The ids the results of insertStatements answered, in row order. */
function returnedIds(results: unknown[], returning: boolean): number[] {
  if (returning) return (results[0] as Array<{ id: number | string }>).map((r) => Number(r.id));
  return results.map((r) => Number((r as ResultSetHeader).insertId));
}
