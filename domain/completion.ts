import type { AgentEvent } from '../contracts/agent-event.ts';

/** A hypervisor's free resources as its agent tracks them (memory in MB, disk in GB). */
export interface HostState {
  memfree: number;
  diskfree_actual: number;
  vmcount: number;
}

/** Where the agent heard of an event; recorded with each execution (event_executions.source). */
export type ExecutionSource = 'god-query' | 'router' | 'harpoon';

/** The droplet's status once an event of each type has run on its host. */
export const DROPLET_STATUS_AFTER: Readonly<Record<string, string | undefined>> = {
  create: 'active',
  destroy: 'archived',
  reboot: 'active',
  power_on: 'active',
  power_off: 'off',
};

/**
 * What executing the event does to its host's free resources.
 *
 * @example
 *   const d = resourceDelta(event); // create of a 1 GB droplet: { memfree: -1024, diskfree_actual: -30, vmcount: 1 }
 *   host = { memfree: host.memfree + d.memfree, diskfree_actual: host.diskfree_actual + d.diskfree_actual, vmcount: host.vmcount + d.vmcount };
 */
export function resourceDelta(row: AgentEvent): HostState {
  const memory = row.size_memory ?? 0;
  const disk = row.size_disk ?? 0;
  if (row.event_type === 'create' && row.droplet_id) return { memfree: -memory, diskfree_actual: -disk, vmcount: 1 };
  if (row.event_type === 'destroy' && row.droplet_id && row.droplet_status !== 'archived') {
    return { memfree: memory, diskfree_actual: disk, vmcount: -1 };
  }
  return { memfree: 0, diskfree_actual: 0, vmcount: 0 };
}
