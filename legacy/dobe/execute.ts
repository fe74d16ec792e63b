import type { Connection, ResultSetHeader } from 'mysql2/promise';
import type { AgentEvent } from '../contracts/agent-event.ts';

/** The agent's own view of its hypervisor, which it reports to its `servers` row. */
export interface HostState {
  memfree: number;
  diskfree_actual: number;
  vmcount: number;
}

/** Where the agent heard of the event; recorded with each execution. */
export type EventSource = 'god-query' | 'router' | 'harpoon';

const DROPLET_STATUS_AFTER: Record<string, string | undefined> = {
  create: 'active',
  destroy: 'archived',
  reboot: 'active',
  power_on: 'active',
  power_off: 'off',
};

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
  source: EventSource,
): Promise<HostState | undefined> {
  const delta = resourceDelta(row);
  const applied = await recordCompletion(conn, row, receivedAt, source);
  if (!applied) return undefined;
  return { memfree: host.memfree + delta.memfree, diskfree_actual: host.diskfree_actual + delta.diskfree_actual, vmcount: host.vmcount + delta.vmcount };
}

/** What executing the event does to its host's free resources. */
export function resourceDelta(row: AgentEvent): HostState {
  const memory = row.size_memory ?? 0;
  const disk = row.size_disk ?? 0;
  if (row.event_type === 'create' && row.droplet_id) return { memfree: -memory, diskfree_actual: -disk, vmcount: 1 };
  if (row.event_type === 'destroy' && row.droplet_id && row.droplet_status !== 'archived') {
    return { memfree: memory, diskfree_actual: disk, vmcount: -1 };
  }
  return { memfree: 0, diskfree_actual: 0, vmcount: 0 };
}

/**
 * The database side of a completion, for whoever holds the connection: an
 * agent in the legacy stage, or the Event Router acting for an agent.
 * Host resources change by relative amounts so concurrent writers compose.
 * Returns false (and changes nothing) when the event was already done.
 */
export async function recordCompletion(conn: Connection, row: AgentEvent, receivedAt: Date, source: EventSource): Promise<boolean> {
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

/**
 * The non-event writes of a completion (host resources, droplet, address,
 * execution record), inside the caller's transaction. The Event Router in
 * Harpoon mode runs these without touching `events` (router/completion.ts).
 */
export async function applyCompletion(conn: Connection, row: AgentEvent, receivedAt: Date, source: EventSource): Promise<void> {
  const delta = resourceDelta(row);
  // The host row before the droplet: the droplet's foreign-key check would otherwise take a shared lock
  // on it first and upgrade later, deadlocking against a Scheduler V2 placement holding that row.
  if (delta.vmcount !== 0) {
    await conn.query(
      'UPDATE servers SET memfree = memfree + ?, diskfree_actual = diskfree_actual + ?, vmcount = GREATEST(0, vmcount + ?), updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?',
      [delta.memfree, delta.diskfree_actual, delta.vmcount, row.server_id],
    );
  }
  const dropletStatus = DROPLET_STATUS_AFTER[row.event_type];
  if (dropletStatus && row.droplet_id) {
    await conn.query('UPDATE droplets SET status = ?, server_id = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?', [dropletStatus, row.server_id, row.droplet_id]);
  }
  if (row.event_type === 'create' && row.droplet_id) {
    const id = row.droplet_id;
    await conn.query(
      "INSERT IGNORE INTO ip_addresses (droplet_id, region_id, address, type) SELECT ?, region_id, ?, 'public' FROM droplets WHERE id = ?",
      [id, `172.${16 + ((id >> 16) & 15)}.${(id >> 8) & 255}.${id & 255}`, id],
    );
  }
  await conn.query('INSERT INTO event_executions (event_id, server_id, source, received_at, finished_at) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP(3))', [
    row.event_id,
    row.server_id,
    source,
    receivedAt,
  ]);
}
