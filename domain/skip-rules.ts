/** Why a scheduler skipped a host: Scheduler V1's SKIP rules, in order, which Scheduler V2's filters reproduce. */
export type V1SkipRule =
  | 'too-many-errors'
  | 'state'
  | 'overage'
  | 'max-135-vms'
  | 'cpus'
  | 'disk'
  | 'memory'
  | 'memory-512'
  | 'busy-create'
  | 'busy-restore'
  | 'busy-pdu-reboot'
  | 'busy-ipmi-reboot'
  | 'busy-node-unresponsive';
