import { fileURLToPath } from 'node:url';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { spawnServiceProcess, type ServiceProcess } from '../lib/process/service-process.ts';
import type { RouterErrorCode } from './errors.ts';
import type { HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface RouterProcessOptions {
  /** The region's `event_router` MySQL user on the run's database. */
  db: DbConfig;
  region: string;
  /** A concrete port: a replacement process must listen where the old one did. */
  port: number;
  host?: string;
  /** The hypervisor key ring or its file: the router is handed that and no database secret but its own password. */
  hypervisorKeys: HypervisorKeyRing | { file: string };
  pollIntervalMs?: number;
  poolSize?: number;
  logLevel?: string;
  /** Harpoon's replicas and the router's service token: the router follows `event-writes` (router/README.md). */
  harpoon?: RouterHarpoonSettings;
  /** The cutover admin's state endpoint: the router reads its cutover state over HTTP instead of MySQL. */
  state?: RouterStateSettings;
  /**
   * URL of the module whose default export is the legacy event source (legacy/router/mysql-source.ts's
   * MYSQL_SOURCE_MODULE), filled by the wiring of the legacy stages; without it the router reads Harpoon only.
   */
  legacySource?: string;
  /** How long to wait for /readyz (default 60 s: ten routers compiling at once on a busy 2-core machine take a while). */
  readyTimeoutMs?: number;
}

export interface RouterHarpoonSettings {
  urls: string[];
  token: string;
}

export interface RouterStateSettings {
  /** The cutover admin's base URL. */
  url: string;
  token: string;
  intervalMs?: number;
}

/** What router/main.ts reads from ROUTER_OPTIONS (JSON): the settings that are not one string each. */
export interface RouterJsonOptions {
  harpoon?: RouterHarpoonSettings;
  state?: RouterStateSettings;
}

export interface RouterProcess extends ServiceProcess {
  region: string;
}

/**
 * Runs one Event Router as its own process (`node --import tsx router/main.ts`)
 * and resolves once it answers `/readyz`: a router that can be killed with
 * SIGKILL without taking anything else down, as in production. The IPC
 * channel is a lifeline (lib/process/service-process.ts): router/main.ts exits
 * when it closes, so a supervisor killed with SIGKILL leaves no router behind.
 *
 * @example
 *   const r = await spawnRouterProcess({ db: routerDb, region: 'nyc1', port: 8091, hypervisorKeys: { file: keysPath } });
 *   … r.child.kill('SIGTERM'); await r.exited;
 */
export async function spawnRouterProcess(options: RouterProcessOptions): Promise<RouterProcess> {
  const host = options.host ?? '127.0.0.1';
  const proc = await spawnServiceProcess({
    name: `event router for ${options.region}`,
    main: MAIN,
    url: `http://${host}:${options.port}`,
    errorCode: 'ROUTER_ERR_START' satisfies RouterErrorCode,
    ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    env: {
      ROUTER_MYSQL_URL: formatMysqlUrl(options.db),
      ROUTER_REGION: options.region,
      PORT: String(options.port),
      HOST: host,
      ROUTER_POLL_MS: String(options.pollIntervalMs ?? 1000),
      ...(options.poolSize !== undefined ? { ROUTER_POOL_SIZE: String(options.poolSize) } : {}),
      ...(options.legacySource ? { ROUTER_LEGACY_SOURCE: options.legacySource } : {}),
      ...('file' in options.hypervisorKeys ? { ROUTER_HV_KEYS_FILE: options.hypervisorKeys.file } : { ROUTER_HV_KEYS: JSON.stringify(options.hypervisorKeys) }),
      ...(options.harpoon || options.state
        ? { ROUTER_OPTIONS: JSON.stringify({ harpoon: options.harpoon, state: options.state } satisfies RouterJsonOptions) }
        : {}),
      LOG_LEVEL: options.logLevel ?? process.env.LOG_LEVEL ?? 'warn',
    },
  });
  return { region: options.region, ...proc };
}
