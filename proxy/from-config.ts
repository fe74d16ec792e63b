import type { Registry } from 'prom-client';
import { invalidOption } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createProxyAdmin, type ProxyAdmin } from './admin.ts';
import { createProxyCluster, type ProxyCluster } from './cluster.ts';
import { proxyOptionsOf, validateProxyConfig, type ProxyConfig } from './config.ts';
import { CONFIG_STATE_MODULE, resolveProxyState } from './config-state.ts';

/** An upstream instance failing its health checks, and the pool (feature, side) it leaves short. */
export interface UnreadyUpstream {
  feature: string;
  target: string;
  instance: string;
  health_path: string;
}

export interface ConfiguredProxyOptions {
  /** A parsed config (validated here again: the demo's config, built in code, takes the same path as a file). */
  config: ProxyConfig | unknown;
  /** Where `state` finds its token or database URL (process.env by default). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  workerLogLevel?: string;
}

export interface ConfiguredProxy {
  /** Starts the workers (and the admin port); resolves with the instances failing their first health checks. */
  start(): Promise<{ url: string; port: number; adminUrl?: string; unready: UnreadyUpstream[] }>;
  close(): Promise<void>;
  readonly config: ProxyConfig;
  readonly cluster: ProxyCluster;
  /** Every worker's proxy_* series, aggregated (serve it where the gates read the proxy). */
  readonly registry: Registry;
}

/**
 * The proxy as a config file describes it: validated, its state source
 * resolved from the environment, run as a cluster of `workers` processes,
 * with the aggregated metrics and shadow samples on `admin.port` when set. `strangler proxy`,
 * `strangler serve proxy` and the demo's stack all start it through here.
 *
 * @example
 *   const proxy = createConfiguredProxy({ config: loadProxyConfigFile('proxy.json') });
 *   const { url, unready } = await proxy.start();
 *   for (const u of unready) log.warn(u, 'pool instance unready');
 */
export function createConfiguredProxy(options: ConfiguredProxyOptions): ConfiguredProxy {
  const config = validateProxyConfig(options.config);
  const logger = options.logger ?? silentLogger();
  const state = resolveProxyState(config.state, options.env ?? process.env);
  const cluster = createProxyCluster({
    ...proxyOptionsOf(config),
    workers: config.workers ?? 1,
    stateFactory: { module: CONFIG_STATE_MODULE, export: 'createConfiguredState', options: state },
    logger,
    ...(options.workerLogLevel !== undefined ? { workerLogLevel: options.workerLogLevel } : {}),
  });
  let admin: ProxyAdmin | undefined;
  if (config.admin) {
    const tokenEnv = config.admin.tokenEnv ?? 'STRANGLER_ADMIN_TOKEN';
    const token = (options.env ?? process.env)[tokenEnv];
    if (!token) throw invalidOption(tokenEnv, '(not set)', `the proxy admin port's token (config "admin"); set the environment variable ${tokenEnv}`);
    admin = createProxyAdmin({ token, proxy: cluster, registry: cluster.registry, logger, host: config.admin.host ?? '127.0.0.1', port: config.admin.port });
  }
  let closing: Promise<void> | undefined;
  return {
    config,
    cluster,
    registry: cluster.registry,
    async start() {
      const address = await cluster.start();
      let adminUrl: string | undefined;
      try {
        if (admin) adminUrl = (await admin.start()).url;
      } catch (err) {
        await cluster.close();
        throw err;
      }
      // Each worker ran one round of health checks before listening: its /readyz names who failed.
      const res = await fetch(`${address.url}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      const body = (await res?.json().catch(() => undefined)) as { unready_upstreams?: UnreadyUpstream[] } | undefined;
      const unready = body?.unready_upstreams ?? [];
      for (const u of unready) logger.warn(u, 'upstream instance fails its health check at start: its pool starts without it');
      return { ...address, ...(adminUrl ? { adminUrl } : {}), unready };
    },
    close() {
      closing ??= (async () => {
        await admin?.close();
        await cluster.close();
      })();
      return closing;
    },
  };
}
