import type { Knex } from 'knex';
import { Gauge, type Registry } from 'prom-client';
import { lockdownHolds } from '../lib/db/service-users.ts';
import type { Logger } from '../lib/logger.ts';
import { allowedAfterLockdown, readEventGrants, type EventGrant } from './lockdown.ts';

/** What the server grants on event data now, against what the cutover state says it should. */
export interface GrantCheck {
  /** The cutover state says lockdown holds (its step is at full). */
  lockdown: boolean;
  /** Grants on event data outside the policy while lockdown holds (domain/event-data.ts); empty otherwise. */
  drift: EventGrant[];
  checked_at: string;
}

/**
 * Reads the grants on event data and the cutover state, and says what
 * drifted: a grant someone put back by hand, a migration run by an older
 * tool, a restored backup of mysql.*.
 */
export async function checkEventGrants(admin: Knex, database: string, keep: readonly string[] = ['harpoon']): Promise<GrantCheck> {
  const locked = await lockdownHolds(admin, database);
  const drift = locked ? (await readEventGrants(admin, database)).filter((g) => !allowedAfterLockdown(g, keep)) : [];
  return { lockdown: locked, drift, checked_at: new Date().toISOString() };
}

export interface GrantWatcher {
  /** The last check (undefined before the first). */
  last(): GrantCheck | undefined;
  check(): Promise<GrantCheck>;
  start(): Promise<void>;
  close(): void;
}

/**
 * The admin's re-check of lockdown: at start and every `intervalMs`, the
 * grants on event data against the cutover state. Drift is a metric
 * (`strangler_lockdown_drift_grants`, which a plan gate can require to be 0),
 * a warning in the log, and a line in `strangler cutover status` (the lockdown
 * effect's describe reads the same check).
 *
 * @example
 *   const watcher = createGrantWatcher({ admin: rootKnex, database, registry: admin.registry, logger });
 *   await watcher.start();
 */
export function createGrantWatcher(options: { admin: Knex; database: string; registry: Registry; logger: Logger; intervalMs?: number; keep?: string[] }): GrantWatcher {
  const log = options.logger.child({ component: 'grant-watcher' });
  let last: GrantCheck | undefined;
  let timer: NodeJS.Timeout | undefined;
  const drift = new Gauge({
    name: 'strangler_lockdown_drift_grants',
    help: 'Grants on event data (events, event_log, event_outbox) outside the lockdown policy while the cutover state says lockdown holds; 0 is sole access.',
    registers: [options.registry],
    collect() {
      this.set(last?.drift.length ?? 0);
    },
  });
  new Gauge({
    name: 'strangler_lockdown_holds',
    help: 'Whether the cutover state says lockdown holds (1) or not (0), as the grant watcher last read it.',
    registers: [options.registry],
    collect() {
      this.set(last?.lockdown ? 1 : 0);
    },
  });
  void drift;
  async function check(): Promise<GrantCheck> {
    last = await checkEventGrants(options.admin, options.database, options.keep);
    if (last.drift.length > 0) log.warn({ drift: last.drift.map((g) => `${g.grantee} ${g.privilege} on ${g.table}`) }, 'lockdown drift: grants on event data outside the policy');
    return last;
  }
  return {
    last: () => last,
    check,
    async start() {
      await check();
      timer = setInterval(() => void check().catch((err: Error) => log.warn({ err: err.message }, 'grant check failed')), options.intervalMs ?? 10_000);
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
