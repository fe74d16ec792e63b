import type { Knex } from 'knex';
import type { FeatureEffect } from '../proxy/cutover/effects.ts';
import { allowedAfterLockdown, lockdown, readEventGrants, rollbackLockdown } from './lockdown.ts';
import { checkEventGrants } from './grant-watcher.ts';
import { boundedReading } from '../proxy/cutover/providers.ts';

/** The gate every advance must pass while lockdown holds: no grant on event data outside its policy. */
export const LOCKDOWN_DRIFT_GATE = 'lockdown-drift';

export interface LockdownEffectOptions {
  /** An account that may GRANT and REVOKE on the database (root, or an admin made for it). */
  admin: Knex;
  database: string;
  /** Accounts that keep their grants on events (default: harpoon). */
  keep?: string[];
}

/**
 * The `lockdown` feature's side effect for the cutover controller: entering
 * its step revokes every grant on `events` but Harpoon's; leaving it (a
 * rollback, by hand or by the soak watcher) grants back exactly what was
 * revoked. `describe` is what `strangler cutover status` prints under
 * "grants on events"; `gate` fails every advance while lockdown drifted.
 *
 * @example
 *   createCutoverAdmin({ db, tokens, services, effects: { lockdown: createLockdownEffect({ admin: rootKnex, database }) } });
 */
export function createLockdownEffect(options: LockdownEffectOptions): FeatureEffect {
  const keep = options.keep ?? ['harpoon'];
  return {
    async apply(change) {
      if (change.toMode === 'full') await lockdown(options.admin, options.database, { keep });
      else if (change.toStep === 0) await rollbackLockdown(options.admin, options.database);
    },
    async describe() {
      const grants = await readEventGrants(options.admin, options.database);
      const holders: Record<string, string[]> = {};
      for (const g of grants) {
        const key = `${g.grantee}${g.level === 'table' ? '' : ` (${g.level})`}`;
        (holders[key] ??= []).push(g.level === 'table' ? `${g.table}.${g.privilege}` : g.privilege);
      }
      const others = [...new Set(grants.filter((g) => !allowedAfterLockdown(g, keep)).map((g) => g.user))].sort();
      // Drift: the cutover state says lockdown holds, the server says someone else may still touch event data.
      const drift = (await checkEventGrants(options.admin, options.database, keep)).drift.map((g) => `${g.grantee} ${g.privilege} on ${g.table}`);
      return { grants_on_events: holders, sole_access: others.length === 0, others_with_access: others, drift };
    },
    async gate() {
      const check = await checkEventGrants(options.admin, options.database, keep);
      if (!check.lockdown) return undefined;
      const what = check.drift.map((g) => `${g.grantee} ${g.privilege} on ${g.table}`);
      return {
        ...boundedReading({ gate: LOCKDOWN_DRIFT_GATE, kind: 'invariant', service: 'database' }, check.drift.length, { max: 0 }, 'grants on event data outside the lockdown policy'),
        ...(what.length > 0 ? { message: `lockdown drift: ${what.join('; ')} (runbooks/security.md: drift; revoke them, or roll lockdown back and advance it again)` } : {}),
      };
    },
  };
}
