import type { DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { createProcessSupervisor } from '../lib/process/supervisor.ts';
import { spawnRouterProcess, type RouterHarpoonSettings, type RouterStateSettings } from './process.ts';
import type { HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';

export interface RouterSupervisorOptions {
  /** Region slugs: one router process each. */
  regions: readonly string[];
  /** The `event_router` MySQL user on the run's database. */
  db: DbConfig;
  /** Secret the hypervisor tokens derive from. */
  /** The hypervisor key ring, or its file (lib/auth/hypervisor-keys.ts): what the routers check tokens against. */
  hypervisorKeys: HypervisorKeyRing | { file: string };
  pollIntervalMs?: number;
  poolSize?: number;
  /**
   * Every router follows `event-writes` through these Harpoon replicas. `token` as a map gives each
   * region's router its own (region-bound, stack/harpoon-tokens.ts); a string is shared by all.
   */
  harpoon?: { urls: string[]; token: string | Readonly<Record<string, string>> };
  /** Every router reads its cutover state from the cutover admin over HTTP. */
  state?: RouterStateSettings;
  /** The legacy event source's module URL for every router (see RouterProcessOptions.legacySource). */
  legacySource?: string;
  host?: string;
  /** Region → port, chosen by the caller (so the proxy's routes can name the routers before they start); others get free ports. */
  ports?: Readonly<Record<string, number>>;
  logger?: Logger;
  /** Wait before restarting a router that died (default 200 ms; doubles, up to 5 s, while it keeps dying). */
  restartDelayMs?: number;
  /** Grace for SIGTERM at close before SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
}

export interface SupervisedRouter {
  region: string;
  url: string;
  /** The current process's pid, 0 while it is being restarted. */
  pid: number;
  up: boolean;
}

export interface RouterSupervisor {
  /** Starts every region's router and resolves once each answers /readyz. */
  start(): Promise<SupervisedRouter[]>;
  /** Stops every router (SIGTERM, they drain) and stops restarting them; idempotent. */
  close(): Promise<void>;
  routers(): SupervisedRouter[];
  /** Routers restarted after dying since start. */
  restarts(): number;
  /** Sends `signal` to a region's router process (chaos runs, tests); false if none is running. */
  kill(region: string, signal?: NodeJS.Signals): boolean;
  /** The running router processes, for reports (peak memory is read from /proc by pid). */
  processes(): Array<{ region: string; pid: number }>;
}

/**
 * One Event Router process per region, each on a fixed port, restarted on
 * the same port when it dies (lib/process/supervisor.ts): agents reconnect
 * to the same URL and the new process redelivers whatever the dead one had
 * claimed (router/README.md). Routers are processes, not objects in the
 * caller, so that a kill -9 of one takes nothing else down and no process
 * holds every agent's socket.
 *
 * @example
 *   const routers = createRouterSupervisor({ regions: ['nyc1', 'sfo1'], db: routerDb, hypervisorKeys: { file: keysPath } });
 *   const list = await routers.start();   // [{ region: 'nyc1', url: 'http://127.0.0.1:41234', … }, …]
 *   … await routers.close();
 */
export function createRouterSupervisor(options: RouterSupervisorOptions): RouterSupervisor {
  if (!Array.isArray(options.regions) || options.regions.length === 0) throw invalidOption('regions', options.regions, 'a non-empty list of region slugs');
  if (new Set(options.regions).size !== options.regions.length) throw invalidOption('regions', options.regions, 'region slugs without repeats');
  const host = options.host ?? '127.0.0.1';
  const harpoonFor = (region: string): RouterHarpoonSettings | undefined => {
    const h = options.harpoon;
    if (!h) return undefined;
    return { urls: h.urls, token: typeof h.token === 'string' ? h.token : h.token[region]! };
  };
  const tokens = options.harpoon?.token;
  if (tokens !== undefined && typeof tokens !== 'string') {
    const missing = options.regions.filter((r) => typeof tokens[r] !== 'string');
    if (missing.length > 0) throw invalidOption('harpoon.token', '[redacted]', `a token for every region's router (missing: ${missing.join(', ')})`);
  }
  const supervisor = createProcessSupervisor({
    component: 'event-router',
    names: options.regions,
    host,
    ...(options.ports ? { ports: options.ports } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.restartDelayMs !== undefined ? { restartDelayMs: options.restartDelayMs } : {}),
    ...(options.stopTimeoutMs !== undefined ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
    spawn: (name, port) =>
      spawnRouterProcess({
        db: options.db,
        region: name,
        port,
        host,
        hypervisorKeys: options.hypervisorKeys,
        ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
        ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
        ...(options.harpoon ? { harpoon: harpoonFor(name)! } : {}),
        ...(options.state ? { state: options.state } : {}),
        ...(options.legacySource ? { legacySource: options.legacySource } : {}),
      }),
  });
  const routers = (): SupervisedRouter[] => supervisor.list().map((p) => ({ region: p.name, url: p.url, pid: p.pid, up: p.up }));
  return {
    async start() {
      await supervisor.start();
      return routers();
    },
    close: () => supervisor.close(),
    routers,
    restarts: () => supervisor.restarts(),
    kill: (region, signal = 'SIGKILL') => supervisor.kill(region, signal),
    processes: () => routers().filter((r) => r.up).map((r) => ({ region: r.region, pid: r.pid })),
  };
}
