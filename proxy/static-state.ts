import type { FeatureState, FeatureStateSource, Routing, RoutingMode } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';

const MODES: RoutingMode[] = ['legacy', 'shadow', 'canary', 'full'];

export type StaticStates = Record<string, Partial<Routing> & { mode: RoutingMode }>;

export interface StaticStateSource extends FeatureStateSource {
  /** Replaces one feature's routing (bumping its version), or removes it with `undefined` (→ legacy). */
  set(feature: string, routing: (Partial<Routing> & { mode: RoutingMode }) | undefined): void;
  close(): void;
}

function toState(feature: string, r: Partial<Routing> & { mode: RoutingMode }, version: number): FeatureState {
  if (typeof r !== 'object' || r === null || !MODES.includes(r.mode)) throw invalidOption(`states.${feature}.mode`, r?.mode, `one of ${MODES.join(', ')}`);
  const percent = r.percent ?? (r.mode === 'full' ? 100 : 0);
  if (typeof percent !== 'number' || !(percent >= 0 && percent <= 100)) throw invalidOption(`states.${feature}.percent`, r.percent, 'a number from 0 to 100');
  const regions = r.regions ?? null;
  if (regions !== null && (!Array.isArray(regions) || !regions.every((x) => typeof x === 'string'))) {
    throw invalidOption(`states.${feature}.regions`, r.regions, 'null (every region) or an array of region slugs');
  }
  return {
    feature,
    mode: r.mode,
    percent,
    regions,
    step: r.mode === 'legacy' ? 0 : 1,
    stepName: r.mode,
    paused: false,
    version,
    updatedAt: new Date().toISOString(),
  };
}

/**
 * A FeatureStateSource from a fixed map, for tests, benches and setups that
 * route by configuration instead of the cutover's MySQL state. It is also a
 * `stateFactory` a proxy cluster's workers can load:
 * `{ module: new URL('./static-state.ts', import.meta.url).href, export: 'createStaticState', options: { … } }`.
 *
 * @example
 *   const state = createStaticState({ 'droplet-api': { mode: 'canary', percent: 30 } });
 *   state.set('droplet-api', { mode: 'full' });
 */
export function createStaticState(states: StaticStates = {}): StaticStateSource {
  if (typeof states !== 'object' || states === null) throw invalidOption('states', states, 'an object { "<feature>": { mode, percent?, regions? } }');
  const map = new Map<string, FeatureState>();
  let version = 0;
  for (const [feature, r] of Object.entries(states)) map.set(feature, toState(feature, r, ++version));
  return {
    get: (feature) => map.get(feature),
    set(feature, routing) {
      if (routing === undefined) map.delete(feature);
      else map.set(feature, toState(feature, routing, ++version));
    },
    close() {
      map.clear();
    },
  };
}
