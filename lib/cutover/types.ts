export { FEATURES, type FeatureName } from '../../domain/features.ts';

/**
 * What any feature may be called, in a plan or a proxy config (another
 * system's migration names its own): lower-case letters, digits, `.`, `_`
 * and `-`, at most 64 (the `cutover_features.feature` column).
 */
export const FEATURE_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/**
 * How a feature's traffic is split at one step:
 * - legacy: everything on the old path;
 * - shadow: answered by the old path, a copy sent to the new one and compared;
 * - canary: keys in `regions` (all when null) whose sticky bucket is below `percent` go new;
 * - full: everything on the new path.
 */
export type RoutingMode = 'legacy' | 'shadow' | 'canary' | 'full';

export interface Routing {
  mode: RoutingMode;
  /** 0–100, for canary. */
  percent: number;
  /** Region slugs the canary covers; null means every region. */
  regions: string[] | null;
}

/** A feature's live state, as every proxy replica and agent reads it from MySQL. */
export interface FeatureState extends Routing {
  feature: string;
  /** 0 is the implicit legacy step; 1..n are the plan's steps. */
  step: number;
  stepName: string;
  paused: boolean;
  /** Bumped on every change, so readers can tell a new state from an old one cheaply. */
  version: number;
  updatedAt: string;
}

export const LEGACY_ROUTING: Routing = { mode: 'legacy', percent: 0, regions: null };

/**
 * Where a proxy or agent reads feature states from. The MySQL-backed reader
 * (proxy/cutover) implements it; tests may pass a fixed map.
 */
export interface FeatureStateSource {
  get(feature: string): FeatureState | undefined;
}

/** One feature's state moved to a new version (as a reader saw it). */
export interface FeatureStateChange {
  feature: string;
  state: FeatureState;
  /** The state the reader held before, undefined on the first load. */
  previous: FeatureState | undefined;
}

/**
 * A FeatureStateSource that can also list every feature and tell its users
 * when a state changes (the MySQL poller in proxy/cutover implements it),
 * so an agent can switch its event source live instead of polling `get`.
 */
export interface ObservableFeatureStateSource extends FeatureStateSource {
  all(): FeatureState[];
  /** Calls `listener` after each change; returns a function that unsubscribes. */
  onChange(listener: (change: FeatureStateChange) => void): () => void;
}
