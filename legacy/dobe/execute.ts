import type { Connection, ResultSetHeader } from 'mysql2/promise';
import type { AgentEvent } from '../../contracts/agent-event.ts';
import { resourceDelta, type ExecutionSource, type HostState } from '../../domain/completion.ts';
import { applyCompletion } from '../../dobe/completion.ts';

/**
 * Claims an event for this host: the conditional UPDATE is what makes a
 * second execution impossible even if two pollers saw the same row.
 */
export async function claimEvent(conn: Connection, eventId: number, serverId: number): Promise<boolean> {
  const [result] = await conn.query<ResultSetHeader>(
    "UPDATE events SET status = 'running', started_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND server_id = ? AND status = 'pending'",
    [eventId, serverId],
  );
  return result.affectedRows === 1;
}

/**
 * Applies a finished event in one transaction: the event's `done`, the
 * droplet's new status, the host's resources and the execution record
 * (counted later to prove nothing ran twice). The `done` transition goes
 * first and must change exactly one row: if another completion already
 * committed, this one rolls back and changes nothing. Returns the host
 * state after, or undefined when the event was already finished.
 */
export async function completeEvent(
  conn: Connection,
  row: AgentEvent,
  host: HostState,
  receivedAt: Date,
  source: ExecutionSource,
): Promise<HostState | undefined> {
  const delta = resourceDelta(row);
  const applied = await recordCompletion(conn, row, receivedAt, source);
  if (!applied) return undefined;
  return { memfree: host.memfree + delta.memfree, diskfree_actual: host.diskfree_actual + delta.diskfree_actual, vmcount: host.vmcount + delta.vmcount };
}

/**
 * The database side of a god-query agent's completion: the event's `done`
 * transition, then applyCompletion, in one transaction. Returns false (and
 * changes nothing) when the event was already done.
 */
export async function recordCompletion(conn: Connection, row: AgentEvent, receivedAt: Date, source: ExecutionSource): Promise<boolean> {
  await conn.beginTransaction();
  try {
    const [done] = await conn.query<ResultSetHeader>(
      "UPDATE events SET status = 'done', finished_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND status = 'running'",
      [row.event_id],
    );
    if (done.affectedRows !== 1) {
      await conn.rollback();
      return false;
    }
    await applyCompletion(conn, row, receivedAt, source);
    await conn.commit();
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  }
  return true;
}
