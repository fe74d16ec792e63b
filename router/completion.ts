/**
 * The router's side of an acknowledgement, exactly once in both sources.
 *
 * A guard's lock first: on the MySQL source (legacy/router/mysql-source.ts)
 * `running → done` on `events` (the row lock serialises completions of one
 * event, as recordCompletion does); on Harpoon no statement on `events`, the
 * host's `servers` row is locked instead (every completion of an event
 * locks the same host row, so two routers cannot both pass the guard), and
 * the event's `done` is set through Harpoon by the caller, after COMMIT.
 *
 * The guard is event_executions itself: an execution already recorded
 * means an earlier completion committed its MySQL half and died (or lost
 * Harpoon) before its `done` got through; it records nothing again.
 */
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { applyCompletion } from '../dobe/completion.ts';
import type { AgentEvent } from '../contracts/agent-event.ts';

export type CompletionOutcome = 'recorded' | 'already-recorded' | 'not-running';

async function executed(conn: PoolConnection, eventId: number): Promise<boolean> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT 1 AS x FROM event_executions WHERE event_id = ? LIMIT 1', [eventId]);
  return rows.length > 0;
}

/** Event ids of `eventIds` that already have an execution recorded (one statement). */
export async function executedAmong(conn: { query: PoolConnection['query'] }, eventIds: number[]): Promise<Set<number>> {
  if (eventIds.length === 0) return new Set();
  const [rows] = await conn.query<RowDataPacket[]>('SELECT DISTINCT event_id FROM event_executions WHERE event_id IN (?)', [eventIds]);
  return new Set(rows.map((r) => Number(r.event_id)));
}

/** How a completion takes the lock that serialises completions of one event. */
export interface CompletionGuard {
  /** Locks (in the open transaction); false: the event is not running, nothing is recorded. */
  lock(conn: PoolConnection, row: AgentEvent): Promise<boolean>;
  /** Re-read the droplet's size and status in the transaction (rows built from caches may be stale). */
  freshDroplet: boolean;
}

/**
 * The Harpoon source's guard: no statement on `events`; the host's `servers`
 * row is locked (every completion of an event locks the same row), and the
 * caller sets `done` through Harpoon after COMMIT (idempotent, so after a
 * crash it is simply set again when the event is found running and already executed).
 */
export const HOST_ROW_GUARD: CompletionGuard = {
  async lock(conn, row) {
    await conn.query('SELECT id FROM servers WHERE id = ? FOR UPDATE', [row.server_id]);
    return true;
  },
  freshDroplet: true,
};

/**
 * Records one completion under `guard`, unless an execution of the event is already recorded.
 *
 * @example
 *   const outcome = await recordGuardedCompletion(conn, row, receivedAt, HOST_ROW_GUARD);
 *   if (outcome !== 'not-running') await harpoon.setStatus(row.event_id, { status: 'done' });
 */
export async function recordGuardedCompletion(conn: PoolConnection, row: AgentEvent, receivedAt: Date, guard: CompletionGuard): Promise<CompletionOutcome> {
  await conn.beginTransaction();
  try {
    if (!(await guard.lock(conn, row))) {
      await conn.rollback();
      return 'not-running';
    }
    if (await executed(conn, row.event_id)) {
      // A `done` the guard wrote stays (the execution happened); otherwise nothing was written.
      await conn.commit();
      return 'already-recorded';
    }
    await applyCompletion(conn, guard.freshDroplet ? await withDroplet(conn, row) : row, receivedAt, 'router');
    await conn.commit();
    return 'recorded';
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  }
}

/**
 * The droplet's size and status as they are now: a row built from the event
 * and the start-up caches may not know a droplet created after them, and
 * the host's resources must change by the droplet's real size.
 */
async function withDroplet(conn: PoolConnection, row: AgentEvent): Promise<AgentEvent> {
  if (!row.droplet_id || (row.event_type !== 'create' && row.event_type !== 'destroy')) return row;
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT d.status, sz.memory, sz.disk FROM droplets d LEFT JOIN sizes sz ON sz.id = d.size_id WHERE d.id = ?',
    [row.droplet_id],
  );
  const d = rows[0];
  if (!d) return row;
  return { ...row, droplet_status: d.status as string, size_memory: d.memory === null ? null : Number(d.memory), size_disk: d.disk === null ? null : Number(d.disk) };
}
