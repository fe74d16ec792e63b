/**
 * Event data: every table that carries events or their payloads. Lockdown
 * (harpoon/lockdown.ts), the service grants on a locked-down database
 * (lib/db/service-users.ts), the grant checks and the verifier
 * (`strangler cutover verify-lockdown`) all read this one list, so a table
 * added here is protected everywhere at once.
 */
export const EVENT_DATA_TABLES = ['events', 'event_log', 'event_outbox'] as const;
export type EventDataTable = (typeof EVENT_DATA_TABLES)[number];

/** The account that alone may touch event data once lockdown holds. */
export const EVENT_DATA_OWNER = 'harpoon';

/**
 * What lockdown leaves to other accounts on event data: Cloud's outbox is the
 * write-ahead of its writes (it relays rows it wrote itself to Harpoon, then
 * deletes them; UPDATE takes and renews the relay's leases on them), so Cloud keeps
 * SELECT, INSERT, UPDATE and DELETE there and nothing else.
 */
export const LOCKDOWN_HANDOFFS: Readonly<Record<string, Readonly<Partial<Record<EventDataTable, readonly string[]>>>>> = {
  cloud: { event_outbox: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] },
};

export function isEventDataTable(table: string): table is EventDataTable {
  return (EVENT_DATA_TABLES as readonly string[]).includes(table);
}

/** Whether `user` may hold `privilege` on `table` once lockdown holds. */
export function allowedUnderLockdown(user: string, table: string, privilege: string, keep: readonly string[] = [EVENT_DATA_OWNER]): boolean {
  if (!isEventDataTable(table) || keep.includes(user)) return true;
  return (LOCKDOWN_HANDOFFS[user]?.[table] ?? []).includes(privilege);
}
