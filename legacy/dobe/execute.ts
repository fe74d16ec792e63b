import type { Connection, ResultSetHeader } from 'mysql2/promise';
import type { GodQueryRow } from './god-query.ts';

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
  row: GodQueryRow,
  host: HostState,
  receivedAt: Date,
  source: EventSource,
): Promise<HostState | undefined> {
  const next = { ...host };
  let resourcesChanged = false;
  const memory = row.size_memory ?? 0;
  const disk = row.size_disk ?? 0;
  if (row.event_type === 'create' && row.droplet_id) {
    next.memfree -= memory;
    next.diskfree_actual -= disk;
    next.vmcount += 1;
    resourcesChanged = true;
  } else if (row.event_type === 'destroy' && row.droplet_id && row.droplet_status !== 'archived') {
    next.memfree += memory;
    next.diskfree_actual += disk;
    next.vmcount = Math.max(0, next.vmcount - 1);
    resourcesChanged = true;
  }
  await conn.beginTransaction();
  try {
    const [done] = await conn.query<ResultSetHeader>(
      "UPDATE events SET status = 'done', finished_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND status = 'running'",
      [row.event_id],
    );
    if (done.affectedRows !== 1) {
      await conn.rollback();
      return undefined;
    }
    const dropletStatus = DROPLET_STATUS_AFTER[row.event_type];
    if (dropletStatus && row.droplet_id) {
      await conn.query(
        'UPDATE droplets SET status = ?, server_id = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?',
        [dropletStatus, row.server_id, row.droplet_id],
      );
    }
    if (row.event_type === 'create' && row.droplet_id) {
      const id = row.droplet_id;
      await conn.query(
        "INSERT IGNORE INTO ip_addresses (droplet_id, region_id, address, type) SELECT ?, region_id, ?, 'public' FROM droplets WHERE id = ?",
        [id, `172.${16 + ((id >> 16) & 15)}.${(id >> 8) & 255}.${id & 255}`, id],
      );
    }
    if (resourcesChanged) {
      await conn.query(
        'UPDATE servers SET memfree = ?, diskfree_actual = ?, vmcount = ?, updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?',
        [next.memfree, next.diskfree_actual, next.vmcount, row.server_id],
      );
    }
    await conn.query(
      'INSERT INTO event_executions (event_id, server_id, source, received_at, finished_at) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP(3))',
      [row.event_id, row.server_id, source, receivedAt],
    );
    await conn.commit();
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  }
  return next;
}
