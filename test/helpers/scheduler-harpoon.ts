import type { Knex } from 'knex';
import type { HarpoonClient } from '../../harpoon/client.ts';
import { LEGACY_ROUTING, type FeatureState, type FeatureStateChange, type Routing } from '../../lib/cutover/types.ts';
import type { SchedulerStateSource } from '../../scheduler/cutover-follow.ts';

/** Writes a feature's cutover row as the cutover controller would (version bumped, row created if absent). */
export async function setFeature(db: Knex | Knex.Transaction, feature: string, routing: Routing): Promise<void> {
  const row = { mode: routing.mode, percent: routing.percent, regions: routing.regions === null ? null : JSON.stringify(routing.regions) };
  await db('cutover_features')
    .insert({ feature, ...row })
    .onConflict('feature')
    .merge({ ...row, version: db.raw('version + 1') });
}

export const FULL: Routing = { mode: 'full', percent: 100, regions: null };

/** An in-memory cutover state source (the shape of lib/cutover/http-state-source.ts) the test sets by hand. */
export function memoryStateSource(initial: Record<string, Routing>): SchedulerStateSource & { set(feature: string, routing: Routing): void } {
  const states = new Map<string, FeatureState>();
  const listeners = new Set<(c: FeatureStateChange) => void>();
  const set = (feature: string, routing: Routing) => {
    const previous = states.get(feature);
    const state: FeatureState = { ...routing, feature, step: 1, stepName: routing.mode, paused: false, version: (previous?.version ?? 0) + 1, updatedAt: new Date().toISOString() };
    states.set(feature, state);
    for (const l of listeners) l({ feature, state, previous });
  };
  for (const [f, r] of Object.entries(initial)) set(f, r);
  return {
    set,
    get: (feature) => states.get(feature) ?? { ...LEGACY_ROUTING, feature, step: 0, stepName: 'legacy', paused: false, version: 0, updatedAt: '' },
    all: () => [...states.values()],
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start: async () => {},
    close: async () => {},
  };
}

/**
 * Plays the hypervisors' part through Harpoon: every create placed on a
 * host (read by the admin user, so it works whichever way it was placed)
 * goes running, then done, by setStatus — so hosts stop being busy.
 */
export function startCompleter(admin: Knex, client: HarpoonClient, sinceEventId: number, intervalMs = 50): { stop(): Promise<void>; completed: () => number } {
  let stopped = false;
  let completed = 0;
  const run = (async () => {
    while (!stopped) {
      const ids = (await admin('events')
        .where('id', '>', sinceEventId)
        .where({ type: 'create' })
        .whereIn('status', ['pending', 'running'])
        .whereNotNull('server_id')
        .pluck('id')) as number[];
      if (ids.length > 0) {
        await client.setStatuses(ids.map((id) => ({ id: Number(id), status: 'running' as const })));
        const done = await client.setStatuses(ids.map((id) => ({ id: Number(id), status: 'done' as const })));
        completed += done.filter((r) => 'event' in r && r.changed).length;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    completed: () => completed,
    async stop() {
      stopped = true;
      await run;
    },
  };
}
