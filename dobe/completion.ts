import type { Connection } from 'mysql2/promise';
import type { AgentEvent } from '../contracts/agent-event.ts';
import { DROPLET_STATUS_AFTER, resourceDelta, type ExecutionSource } from '../domain/completion.ts';

/**
 * The non-event writes of a completion (host resources, droplet, address,
 * execution record), inside the caller's transaction. Host resources change
 * by relative amounts so concurrent writers compose. The Event Router runs
 * these for its agents (router/completion.ts); the legacy god-query agent
 * runs them after its own `done` transition (legacy/dobe/execute.ts).
 *
 * @example
 *   await conn.beginTransaction();
 *   … // the caller's guard: the event's done transition, or the router's event_acks row
 *   await applyCompletion(conn, event, receivedAt, 'router');
 *   await conn.commit();
 */
export async function applyCompletion(conn: Connection, row: AgentEvent, receivedAt: Date, source: ExecutionSource): Promise<void> {
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
