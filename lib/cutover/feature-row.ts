import { LEGACY_ROUTING, type FeatureState, type Routing, type RoutingMode } from './types.ts';

/** One feature's routing as a service reads it from its `cutover_features` row. */
export interface FeatureRowState {
  routing: Routing;
  /** The row's version (0 when there is no row); informational, decisions use `routing`. */
  version: number;
  /** A stable string of the routing, to tell cheaply whether a decision may have changed. */
  key: string;
}

const MODES: readonly RoutingMode[] = ['legacy', 'shadow', 'canary', 'full'];

/** The one read every follower of a feature makes: a primary-key lookup. */
export const FEATURE_ROW_SQL = 'SELECT mode, percent, regions, version FROM cutover_features WHERE feature = ?';

/**
 * Turns a cutover_features row into a routing, failing safe: an absent
 * row, an unknown mode or unreadable regions all mean "stay where the
 * data is known to be served" — legacy for unknown modes, no region for
 * unreadable region lists.
 *
 * @example
 *   parseFeatureRow({ mode: 'canary', percent: 100, regions: '["nyc1"]', version: 3 }).routing
 *   // { mode: 'canary', percent: 100, regions: ['nyc1'] }
 */
export function parseFeatureRow(row: { mode?: unknown; percent?: unknown; regions?: unknown; version?: unknown } | undefined): FeatureRowState {
  if (!row) return { routing: LEGACY_ROUTING, version: 0, key: 'legacy' };
  const mode = MODES.includes(row.mode as RoutingMode) ? (row.mode as RoutingMode) : 'legacy';
  const pct = Number(row.percent);
  const percent = Number.isFinite(pct) ? Math.min(100, Math.max(0, pct)) : 0;
  let regions: string[] | null = null;
  if (row.regions !== null && row.regions !== undefined && row.regions !== '') {
    try {
      const parsed: unknown = JSON.parse(String(row.regions));
      regions = Array.isArray(parsed) ? parsed.filter((r): r is string => typeof r === 'string') : [];
    } catch {
      regions = [];
    }
  }
  const routing: Routing = { mode, percent, regions };
  return { routing, version: Number(row.version) || 0, key: JSON.stringify(routing) };
}

/**
 * A feature's routing as a state source (lib/cutover/http-state-source.ts)
 * serves it, failing safe like parseFeatureRow: no state means legacy.
 */
export function routingOfState(state: FeatureState | undefined): Routing {
  if (!state) return LEGACY_ROUTING;
  return parseFeatureRow({ mode: state.mode, percent: state.percent, regions: state.regions === null ? null : JSON.stringify(state.regions), version: state.version }).routing;
}
