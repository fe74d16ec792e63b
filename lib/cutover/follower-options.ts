import { invalidOption } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createHttpFeatureStateSource, type HttpFeatureStateSource } from './http-state-source.ts';

/** Harpoon's replicas and a service token: a follower of `event-writes` (routers, Scheduler V2). */
export interface FollowerHarpoonSettings {
  urls: string[];
  token: string;
}

/** The cutover admin's state endpoint: the follower reads its cutover state over HTTP instead of MySQL. */
export interface FollowerStateSettings {
  /** The cutover admin's base URL. */
  url: string;
  token: string;
  intervalMs?: number;
}

/** What a follower's main.ts reads from its JSON variable (ROUTER_OPTIONS, SCHEDULER_V2_OPTIONS). */
export interface FollowerJsonOptions {
  harpoon?: FollowerHarpoonSettings;
  state?: FollowerStateSettings;
}

/**
 * Parses a follower's JSON options variable: an object with only the keys
 * `harpoon` and `state`. Errors name the variable, never echo the value
 * (it holds tokens).
 *
 * @example
 *   parseFollowerOptions('SCHEDULER_V2_OPTIONS', '{"harpoon":{"urls":["http://127.0.0.1:8100"],"token":"…"}}')
 */
export function parseFollowerOptions(name: string, text: string | undefined): FollowerJsonOptions {
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalidOption(name, '[unparsable]', 'a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidOption(name, '[not an object]', 'a JSON object');
  const o = parsed as Record<string, unknown>;
  for (const key of Object.keys(o)) if (key !== 'harpoon' && key !== 'state') throw invalidOption(name, key, 'only the keys "harpoon" and "state"');
  return o as FollowerJsonOptions;
}

/** The HTTP state source for `state` settings (the follower starts and closes it), or none. */
export function stateSourceFor(state: FollowerStateSettings | undefined, logger: Logger): HttpFeatureStateSource | undefined {
  if (!state) return undefined;
  return createHttpFeatureStateSource({ url: state.url, token: state.token, logger, ...(state.intervalMs ? { intervalMs: state.intervalMs } : {}) });
}
