import { invalidOption } from '../errors.ts';
import { allowedUnderLockdown, isEventDataTable } from '../../domain/event-data.ts';
import type { Knex } from 'knex';
import type { DbConfig } from './config.ts';

type Privilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/**
 * Least privilege per service: each legacy service gets exactly the tables
 * and verbs it uses. Later stages (Harpoon's lockdown) revoke from this map.
 */
/**
 * Whoever executes events on a host's behalf — the legacy agent over its own
 * connection, later the Event Router for a whole region — needs the god
 * query's tables, the completion's writes, and the event-delivery state.
 */
const EVENT_EXECUTOR_GRANTS: Record<string, Privilege[]> = {
  events: ['SELECT', 'UPDATE'],
  // SELECT: the Event Router's completion checks for an execution already recorded (router/completion.ts).
  event_executions: ['SELECT', 'INSERT'],
  droplets: ['SELECT', 'UPDATE'],
  servers: ['SELECT', 'UPDATE'],
  regions: ['SELECT'],
  sizes: ['SELECT'],
  images: ['SELECT'],
  kernels: ['SELECT'],
  customers: ['SELECT'],
  ssh_keys: ['SELECT'],
  droplet_ssh_keys: ['SELECT'],
  droplet_features: ['SELECT'],
  ip_addresses: ['SELECT', 'INSERT', 'UPDATE'],
  cutover_features: ['SELECT'],
};

export const SERVICE_GRANTS = {
  cloud: {
    regions: ['SELECT'],
    sizes: ['SELECT'],
    images: ['SELECT'],
    kernels: ['SELECT'],
    customers: ['SELECT'],
    ssh_keys: ['SELECT'],
    droplets: ['SELECT', 'INSERT', 'UPDATE'],
    droplet_ssh_keys: ['SELECT', 'INSERT'],
    droplet_features: ['SELECT', 'INSERT'],
    ip_addresses: ['SELECT'],
    events: ['SELECT', 'INSERT'],
    // event-writes: the outbox Cloud relays to Harpoon (UPDATE: its leases), and the feature row it reads (under a share lock) per write.
    event_outbox: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    cutover_features: ['SELECT'],
  },
  scheduler_v1: {
    events: ['SELECT', 'UPDATE'],
    servers: ['SELECT'],
    droplets: ['SELECT', 'UPDATE'],
    sizes: ['SELECT'],
    // The `scheduling` cutover: V1 leaves the regions that moved to V2 (lib/cutover/scheduling.ts).
    regions: ['SELECT'],
    cutover_features: ['SELECT'],
  },
  // The 2016 god query (legacy/dobe/god-query-2016.ts) also reads the droplet's volumes, backups, snapshots and tags.
  dobe: {
    ...EVENT_EXECUTOR_GRANTS,
    volumes: ['SELECT'],
    backups: ['SELECT'],
    snapshots: ['SELECT'],
    tags: ['SELECT'],
    droplet_tags: ['SELECT'],
  },
  // The proxy serves the cutover admin API: it alone changes the plan's state.
  proxy: {
    cutover_features: ['SELECT', 'INSERT', 'UPDATE'],
    cutover_history: ['SELECT', 'INSERT'],
    cutover_autopilot: ['SELECT', 'INSERT', 'UPDATE'],
    cutover_analysis_runs: ['SELECT', 'INSERT', 'DELETE'],
  },
  // The Event Router polls on behalf of its region's hypervisors and records their acknowledgements.
  event_router: EVENT_EXECUTOR_GRANTS,
  // Scheduler V2 claims create events, places them with a CAS on servers.generation, and records its decisions.
  // It reads droplets/sizes for the capacity ledger; it never writes the host state columns agents own.
  scheduler_v2: {
    events: ['SELECT', 'UPDATE'],
    servers: ['SELECT', 'UPDATE'],
    droplets: ['SELECT', 'UPDATE'],
    sizes: ['SELECT'],
    regions: ['SELECT'],
    placement_decisions: ['SELECT', 'INSERT'],
    scheduler_replicas: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    cutover_features: ['SELECT'],
  },
  // Harpoon: the sole writer of events and their change log (harpoon/README.md); customers for action reads.
  harpoon: {
    events: ['SELECT', 'INSERT', 'UPDATE'],
    // DELETE: pruning entries every subscriber's window has passed (harpoon/log-pruner.ts).
    event_log: ['SELECT', 'INSERT', 'DELETE'],
    event_log_horizon: ['SELECT', 'UPDATE'],
    harpoon_lock: ['SELECT', 'UPDATE'],
    regions: ['SELECT'],
    sizes: ['SELECT'],
    customers: ['SELECT'],
  },
} satisfies Record<string, Record<string, Privilege[]>>;

/** The monitor reads PROCESSLIST for every user (needs PROCESS) and counts rows for reports. */
export const MONITOR_USER = 'strangler_monitor';

export type ServiceUser = keyof typeof SERVICE_GRANTS | typeof MONITOR_USER;

/** Every MySQL user the stack makes, each with its own random password (lib/secrets/stack-secrets.ts). */
export const SERVICE_USERS: readonly ServiceUser[] = [...(Object.keys(SERVICE_GRANTS) as Array<keyof typeof SERVICE_GRANTS>), MONITOR_USER];

/** MySQL password per service user: random, kept in the stack secrets file, never derived. */
export type DbPasswords = Readonly<Record<ServiceUser, string>>;

function passwordOf(passwords: DbPasswords, user: ServiceUser): string {
  const password = passwords[user];
  if (typeof password !== 'string' || password.length < 16) throw invalidOption(`passwords.${user}`, '[redacted]', 'a password of at least 16 characters');
  return password;
}

/**
 * Connection settings for one service's own MySQL user in one database.
 *
 * @example
 *   const cfg = serviceDbConfig(admin, 'strangler_demo_1', 'dobe', secrets.db);
 */
export function serviceDbConfig(server: DbConfig, database: string, user: ServiceUser, passwords: DbPasswords): DbConfig {
  return { host: server.host, port: server.port, user, password: passwordOf(passwords, user), database };
}

/**
 * Creates (or updates) every service user and grants each exactly its
 * privileges on `database`. Idempotent; safe to run from concurrent tests.
 */
export async function ensureServiceUsers(admin: Knex, database: string, passwords: DbPasswords): Promise<void> {
  // On a locked-down database a re-run (strangler db migrate, up --database X) keeps what the cutover
  // state says: nobody but Harpoon gets event data back (domain/event-data.ts); rollback restores it.
  const locked = await lockdownHolds(admin, database);
  for (const [user, tables] of Object.entries(SERVICE_GRANTS)) {
    await createOrUpdateUser(admin, user as ServiceUser, passwords);
    for (const [table, all] of Object.entries(tables)) {
      const privileges = locked ? all.filter((p) => allowedUnderLockdown(user, table, p)) : all;
      if (privileges.length === 0) continue;
      // Privilege names come from the constant map above, never from input.
      await admin.raw(`GRANT ${privileges.join(', ')} ON ??.?? TO ?@'%'`, [database, table, user]);
    }
  }
  await createOrUpdateUser(admin, MONITOR_USER, passwords);
  await admin.raw(`GRANT PROCESS ON *.* TO ?@'%'`, [MONITOR_USER]);
  if (!locked) {
    await admin.raw(`GRANT SELECT ON ??.* TO ?@'%'`, [database, MONITOR_USER]);
    return;
  }
  const [tables] = (await admin.raw('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = ?', [database, 'BASE TABLE'])) as [Array<{ t: string }>];
  for (const { t } of tables) if (!isEventDataTable(t)) await admin.raw(`GRANT SELECT ON ??.?? TO ?@'%'`, [database, t, MONITOR_USER]);
}

/**
 * Whether the cutover state says lockdown holds on `database` (its step is
 * at `full`); false before the cutover tables exist.
 */
export async function lockdownHolds(admin: Knex, database: string): Promise<boolean> {
  try {
    const [rows] = (await admin.raw('SELECT mode FROM ??.cutover_features WHERE feature = ?', [database, 'lockdown'])) as [Array<{ mode: string }>];
    return rows[0]?.mode === 'full';
  } catch (err) {
    if ((err as { code?: string }).code === 'ER_NO_SUCH_TABLE') return false;
    throw err;
  }
}

/**
 * Removes what ensureServiceUsers granted on one database. MySQL keeps
 * grants after DROP DATABASE, so without this every test run would leave
 * rows in mysql.tables_priv. The users themselves stay: other databases
 * on the server may use them.
 */
export async function revokeServiceUsers(admin: Knex, database: string): Promise<void> {
  for (const [user, tables] of Object.entries(SERVICE_GRANTS)) {
    for (const [table, privileges] of Object.entries(tables)) {
      await admin.raw(`REVOKE ${privileges.join(', ')} ON ??.?? FROM ?@'%'`, [database, table, user]).catch(() => {});
    }
  }
  await admin.raw(`REVOKE SELECT ON ??.* FROM ?@'%'`, [database, MONITOR_USER]).catch(() => {});
}

async function createOrUpdateUser(admin: Knex, user: ServiceUser, passwords: DbPasswords): Promise<void> {
  const password = passwordOf(passwords, user);
  await admin.raw(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [user, password]);
  await admin.raw(`ALTER USER ?@'%' IDENTIFIED BY ?`, [user, password]);
}
