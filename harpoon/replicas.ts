import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { formatMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { spawnServiceProcess } from '../lib/process/service-process.ts';
import { createProcessSupervisor, type ProcessSupervisor } from '../lib/process/supervisor.ts';
import type { ServiceTokenSpec } from './auth.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface HarpoonReplicasOptions {
  /** The `harpoon` MySQL user on the run's database. */
  db: DbConfig;
  /** Service tokens, name → token or { token, scopes } (harpoon/auth.ts). The replicas' peer token is made here. */
  tokens: Record<string, ServiceTokenSpec>;
  /** Default 2: the fewest that survive losing one. */
  replicas?: number;
  poolSize?: number;
  host?: string;
  logger?: Logger;
  logLevel?: string;
  /** Wait before restarting a replica that died (default 200 ms). */
  restartDelayMs?: number;
}

export interface HarpoonReplicas extends ProcessSupervisor {
  /** Every replica's base URL, for clients (createHarpoonClient fails over between them). */
  urls(): string[];
}

/**
 * Harpoon as it runs in production: N replica processes on fixed ports,
 * each peered with the others (HARPOON_PEERS), restarted on its port when
 * it dies. A kill -9 of one loses nothing: clients fail over to the other
 * replica with their keys and cursors, and the restarted one catches up
 * from event_log (harpoon/README.md: Replicas).
 *
 * @example
 *   const harpoon = createHarpoonReplicas({ db: serviceDbConfig(server, database, 'harpoon', secret), tokens: { cloud: cloudToken } });
 *   await harpoon.start();
 *   const client = createHarpoonClient({ urls: harpoon.urls(), token: cloudToken });
 */
export function createHarpoonReplicas(options: HarpoonReplicasOptions): HarpoonReplicas {
  const count = options.replicas ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 16) throw invalidOption('replicas', count, 'an integer from 1 to 16');
  const host = options.host ?? '127.0.0.1';
  // The replicas push to each other with a token of their own that can do nothing else (the peer scope).
  const tokens: Array<[string, ServiceTokenSpec]> = [...Object.entries(options.tokens ?? {}), ['harpoon-peer', { token: randomBytes(24).toString('base64url'), scopes: ['peer'] }]];
  if (Object.keys(options.tokens ?? {}).length === 0) throw invalidOption('tokens', '(not shown)', 'a map of at least one service name → token');
  const names = Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i));
  const supervisor = createProcessSupervisor({
    names,
    component: 'harpoon',
    host,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.restartDelayMs !== undefined ? { restartDelayMs: options.restartDelayMs } : {}),
    spawn: (name, port, ports) =>
      spawnServiceProcess({
        name: `harpoon replica ${name}`,
        main: MAIN,
        url: `http://${host}:${port}`,
        errorCode: 'HARPOON_ERR_START',
        env: {
          HARPOON_MYSQL_URL: formatMysqlUrl(options.db),
          HARPOON_TOKENS: tokens.map(([n, t]) => (typeof t === 'string' ? `${n}=${t}` : `${n}=${t.token}=${t.scopes.join('+')}${t.region ? `=${t.region}` : ''}`)).join(','),
          HARPOON_PEERS: [...ports].filter(([other]) => other !== name).map(([, p]) => `http://${host}:${p}`).join(','),
          HARPOON_REPLICA: name,
          PORT: String(port),
          HOST: host,
          ...(options.poolSize !== undefined ? { HARPOON_POOL_SIZE: String(options.poolSize) } : {}),
          LOG_LEVEL: options.logLevel ?? process.env.LOG_LEVEL ?? 'warn',
        },
      }),
  });
  return { ...supervisor, urls: () => supervisor.list().map((p) => p.url) };
}
