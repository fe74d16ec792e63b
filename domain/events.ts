/**
 * The event types and statuses of the `events` table (an enum column each,
 * migrations/001_legacy_schema.ts) that every service and Harpoon's API
 * accept.
 *
 * @example
 *   (EVENT_TYPES as readonly string[]).includes(body.type)
 */
export const EVENT_TYPES = [
  'create',
  'destroy',
  'reboot',
  'power_off',
  'power_on',
  'restore',
  'snapshot',
  'resize',
  'pdu_reboot',
  'ipmi_reboot',
  'node_unresponsive',
] as const;

export const EVENT_STATUSES = ['pending', 'running', 'done', 'error'] as const;
