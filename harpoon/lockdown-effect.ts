import type { Knex } from 'knex';
import type { FeatureEffect } from '../proxy/cutover/effects.ts';
import { harpoonError } from './errors.ts';
import { describeOffenders, lockdownPreflight, type LockdownPreflight, type PreflightOptions } from './lockdown-preflight.ts';
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
  /**
   * Before revoking: watch who touches event data (harpoon/lockdown-preflight.ts) and refuse while
   * anyone lockdown would cut off does, unless the advance overrides it. Default a 5 s window; false: none.
   */
  preflight?: Omit<PreflightOptions, 'keep'> | false;
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
  let last: { at: string; overridden: boolean; result: LockdownPreflight } | undefined;

  /** The preflight before lockdown: a refusal (409) naming the users, or what it saw for the history. */
  async function preflight(overridden: boolean): Promise<string | undefined> {
    if (options.preflight === false) return undefined;
    const result = await lockdownPreflight(options.admin, options.database, { ...options.preflight, keep });
    last = { at: new Date().toISOString(), overridden: overridden && !result.ok, result };
    const seen = `${result.samples} process-list samples over ${result.window_ms} ms`;
    if (result.ok) return `preflight: no one but Harpoon (and the hand-offs) seen at event data (${seen})`;
    const users = describeOffenders(result).join('; ');
    if (overridden) return `PREFLIGHT OVERRIDDEN: still touching event data: ${users} (${seen})`;
    throw harpoonError(
      'HARPOON_ERR_LOCKDOWN_PREFLIGHT',
      `lockdown refused: users other than Harpoon still touch event data: ${users} (${seen}). Stop them (move what they do to Harpoon) and advance again, or advance with --override-preflight (recorded in the history); nothing was revoked`,
    );
  }

  return {
    async apply(change) {
      if (change.toMode === 'full') {
        const note = await preflight(change.overridePreflight === true);
        await lockdown(options.admin, options.database, { keep });
        return note === undefined ? undefined : { note };
      }
      if (change.toStep === 0) await rollbackLockdown(options.admin, options.database);
      return undefined;
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
      const pre = last && { at: last.at, ok: last.result.ok, overridden: last.overridden, offenders: describeOffenders(last.result), window_ms: last.result.window_ms, samples: last.result.samples };
      return { grants_on_events: holders, sole_access: others.length === 0, others_with_access: others, drift, ...(pre ? { preflight: pre } : {}) };
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
