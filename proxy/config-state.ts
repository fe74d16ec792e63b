import { createHttpFeatureStateSource } from '../lib/cutover/http-state-source.ts';
import type { FeatureStateSource } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';
import type { ProxyStateConfig } from './config.ts';
import { createReader } from './cutover/reader.ts';
import { createStaticState, type StaticStates } from './static-state.ts';

/** A config's `state` with its secrets read from the environment: what crosses to each worker (over IPC, never argv). */
export type ResolvedProxyState =
  | { admin: { url: string; token: string; intervalMs?: number } }
  | { mysql: { mysqlUrl: string; intervalMs?: number } }
  | { static: StaticStates };

export const DEFAULT_STATE_TOKEN_ENV = 'STRANGLER_STATE_TOKEN';
export const DEFAULT_PROXY_MYSQL_ENV = 'PROXY_MYSQL_URL';

/**
 * Reads the token or database URL a config's `state` names from `env`;
 * a missing variable is an error naming it (never its value).
 *
 * @example
 *   resolveProxyState({ admin: { url: 'http://admin:9400' } }, process.env) // needs STRANGLER_STATE_TOKEN
 */
export function resolveProxyState(state: ProxyStateConfig, env: NodeJS.ProcessEnv): ResolvedProxyState {
  if ('static' in state) return { static: state.static };
  if ('admin' in state) {
    const name = state.admin.tokenEnv ?? DEFAULT_STATE_TOKEN_ENV;
    const token = env[name];
    if (!token) throw invalidOption(name, '(not set)', `an admin token with the read scope, for state.admin (${state.admin.url}); set the environment variable ${name}`);
    return { admin: { url: state.admin.url, token, ...(state.admin.intervalMs !== undefined ? { intervalMs: state.admin.intervalMs } : {}) } };
  }
  const name = state.mysql.urlEnv ?? DEFAULT_PROXY_MYSQL_ENV;
  const url = env[name];
  if (!url) throw invalidOption(name, '(not set)', `a mysql:// URL of a user that can SELECT cutover_features, for state.mysql; set the environment variable ${name}`);
  return { mysql: { mysqlUrl: url, ...(state.mysql.intervalMs !== undefined ? { intervalMs: state.mysql.intervalMs } : {}) } };
}

/**
 * The `stateFactory` of a proxy built from a config (cluster workers import
 * this module): the HTTP follower, the MySQL reader or a fixed map, started.
 *
 * @example
 *   createProxyCluster({ …, stateFactory: { module: CONFIG_STATE_MODULE, export: 'createConfiguredState', options: resolveProxyState(config.state, process.env) } });
 */
export async function createConfiguredState(options: ResolvedProxyState): Promise<FeatureStateSource & { close?: () => unknown }> {
  if ('static' in options) return createStaticState(options.static);
  if ('mysql' in options) return createReader(options.mysql);
  const source = createHttpFeatureStateSource(options.admin);
  // An admin not up yet (another host, started later) must not keep the proxy down: until the first
  // read every feature routes to legacy, the safe side, and the read is retried every interval.
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const attempt = (): void => {
    source.start().catch(() => {
      if (!closed) retry = setTimeout(attempt, options.admin.intervalMs ?? 1000).unref();
    });
  };
  await source.start().catch(() => {
    retry = setTimeout(attempt, options.admin.intervalMs ?? 1000).unref();
  });
  return Object.assign(source, {
    close: async () => {
      closed = true;
      clearTimeout(retry);
      await source.stop();
    },
  });
}

export const CONFIG_STATE_MODULE = new URL('./config-state.ts', import.meta.url).href;
