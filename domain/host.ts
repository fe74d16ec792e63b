/**
 * A hypervisor's `servers` row: its fixed facts and the free resources its
 * agent reports. Memory in MB, disk in GB. What Scheduler V1 ranks on and
 * the seed generates.
 */
export interface HostRow {
  id: number;
  name: string;
  region_id: number;
  cpus: number;
  memory: number;
  disk: number;
  vmcount: number;
  memfree: number;
  diskfree_actual: number;
  error_count: number;
  /** '' when the host is in service; anything else ('maintenance', 'draining', …) takes it out. */
  state: string;
}
