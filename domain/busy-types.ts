/**
 * Types of pending event that make a hypervisor "busy": Scheduler V1's busy
 * list (the Perl `$busylist->{$server}->{$type}`) and Scheduler V2's filters
 * skip a host with one of these in flight.
 *
 * @example
 *   (V1_BUSY_TYPES as readonly string[]).includes(event.type)
 */
export const V1_BUSY_TYPES = ['create', 'restore', 'pdu_reboot', 'ipmi_reboot', 'node_unresponsive'] as const;
export type V1BusyType = (typeof V1_BUSY_TYPES)[number];
