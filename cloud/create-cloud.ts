import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import { createHarpoonClient, type HarpoonClient } from '../harpoon/client.ts';
import { describeDb, type DbConfig } from '../lib/db/config.ts';
import { createKnex, warmPool } from '../lib/db/knex.ts';
import { invalidOption } from '../lib/errors.ts';
import { DEFAULT_BODY_LIMIT } from '../lib/http/json-body.ts';
import { createRouter } from '../lib/http/router.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { cloudError } from './errors.ts';
import type { DirectEvents } from './direct-events.ts';
import type { CloudDeps, CloudEvents } from './handler.ts';
import { createCloudMetrics } from './metrics.ts';
import { readOutboxHealth } from './outbox.ts';
import { createOutboxRelay, type OutboxRelayOptions } from './relay.ts';
import { addActionRoutes } from './routes/actions.ts';
import { addDropletRoutes } from './routes/droplets.ts';

export interface CloudOptions {
  /** The `cloud` MySQL user's settings (Cloud then owns its pool), or a knex to borrow. */
  db: DbConfig | Knex;
  /** Connections in the pool Cloud creates from a DbConfig; ignored for a borrowed knex. */
  poolMax?: number;
  logger?: Logger;
  /** Where Cloud's metrics go; a fresh Registry by default, never prom-client's global one. */
  registry?: Registry;
  port?: number;
  host?: string;
  /** Largest accepted request body, in bytes. */
  bodyLimit?: number;
  /** Cloud's notion of now; paces the readiness probe and dates an action answered before Harpoon numbered it (rows take the database's time). */
  clock?: () => Date;
  /**
   * Harpoon replicas and Cloud's service token there. Needed once `event-writes` leaves legacy: the
   * outbox relay creates events through it, and at `full` Cloud reads events only through it.
   */
  harpoon?: { urls: string[]; token: string };
  /**
   * The legacy direct event path (legacy/cloud/direct-events.ts): events
   * written to and read from `events` while `event-writes` is below full.
   * Without it Cloud needs Harpoon and event-writes at full.
   */
  directEvents?: DirectEvents;
  /** How long a write through the outbox waits for Harpoon before answering with what it knows (default 1000 ms). */
  relayWaitMs?: number;
  /** Deadline of one request to Harpoon (default 5000 ms), so a hung replica cannot hold a droplet's row lock. */
  harpoonTimeoutMs?: number;
  /** The outbox relay's leases and retries (cloud/relay.ts): leaseMs (10000), scanMs (2000), maxAttempts (100). */
  outbox?: Pick<OutboxRelayOptions, 'leaseMs' | 'scanMs' | 'maxAttempts'>;
}

export interface Cloud {
  start(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

const DEFAULT_POOL_MAX = 8;
const MAX_BODY_LIMIT = 16 * 1024 * 1024;
// /readyz may be scraped every second by several probes; one query per second answers them all.
const READY_TTL_MS = 1000;

function isKnex(db: unknown): db is Knex {
  return typeof db === 'function' && typeof (db as Knex).transaction === 'function' && typeof (db as Knex).destroy === 'function';
}

function checkDbConfig(db: unknown): DbConfig {
  const c = db as Partial<DbConfig> | null;
  const ok =
    typeof c === 'object' &&
    c !== null &&
    typeof c.host === 'string' &&
    c.host !== '' &&
    Number.isInteger(c.port) &&
    c.port! > 0 &&
    c.port! < 65536 &&
    typeof c.user === 'string' &&
    c.user !== '' &&
    typeof c.password === 'string' &&
    typeof c.database === 'string' &&
    c.database !== '';
  if (!ok) {
    // Never echo the value: it carries the password.
    throw invalidOption('db', '[DbConfig or Knex]', 'a knex instance or { host, port, user, password, database } with a database named');
  }
  return c as DbConfig;
}

function checkHarpoon(value: unknown): { urls: string[]; token: string } {
  const h = value as { urls?: unknown; token?: unknown } | null;
  const urls = typeof h === 'object' && h !== null && Array.isArray(h.urls) ? h.urls : undefined;
  if (!urls || urls.length === 0 || !urls.every((u) => typeof u === 'string' && /^https?:\/\/[^/\s]+\/?$/.test(u))) {
    throw invalidOption('harpoon.urls', urls, 'a non-empty array of Harpoon base URLs such as http://127.0.0.1:8100');
  }
  if (typeof h!.token !== 'string' || h!.token.length < 16) throw invalidOption('harpoon.token', '[token]', "Cloud's Harpoon service token (at least 16 characters)");
  return { urls: urls as string[], token: h!.token };
}

/**
 * The Cloud API: DigitalOcean's v2 droplet API over MySQL as the `cloud`
 * user. Creating a droplet inserts the droplet and its pending `create`
 * event (no server yet) in one transaction. With the legacy direct path
 * (`directEvents`) the event is an `events` row — the 2012 protocol the
 * scheduler and the DOBE agents take from there; under the `event-writes`
 * cutover it is an outbox row in the same transaction, relayed to Harpoon
 * (README.md in this folder).
 *
 * Options are checked here, so a bad one fails at start-up with
 * CONFIG_ERR_INVALID_OPTION naming it. `close()` stops accepting, lets
 * in-flight requests finish, then destroys the pool if Cloud created it;
 * it is idempotent.
 *
 * @example
 *   const cloud = createCloud({ db: parseMysqlUrl(process.env.CLOUD_MYSQL_URL!), port: 8080, directEvents });
 *   const { url } = await cloud.start();
 *   // curl -X POST "$url/v2/droplets" -H 'Authorization: Bearer dop_v1_…' \
 *   //   -H 'Content-Type: application/json' \
 *   //   -d '{"name":"web-1","region":"nyc1","size":"1gb","image":"ubuntu-16-04-x64"}'
 *   await cloud.close();
 */
export function createCloud(options: CloudOptions): Cloud {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', options, 'an object');
  const poolMax = options.poolMax ?? DEFAULT_POOL_MAX;
  if (!Number.isInteger(poolMax) || poolMax < 1 || poolMax > 1000) throw invalidOption('poolMax', options.poolMax, 'an integer from 1 to 1000');
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('port', options.port, 'an integer from 0 to 65535');
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption('host', options.host, 'a non-empty host name or address');
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024 || bodyLimit > MAX_BODY_LIMIT) {
    throw invalidOption('bodyLimit', options.bodyLimit, `an integer number of bytes from 1024 to ${MAX_BODY_LIMIT}`);
  }
  const clock = options.clock ?? (() => new Date());
  if (typeof clock !== 'function') throw invalidOption('clock', typeof options.clock, 'a function returning a Date');
  const registry = options.registry ?? new Registry();
  if (typeof registry?.metrics !== 'function' || typeof registry.registerMetric !== 'function') {
    throw invalidOption('registry', typeof options.registry, 'a prom-client Registry');
  }
  const logger = (options.logger ?? silentLogger()).child({ component: 'cloud' });
  if (options.db === undefined || options.db === null) throw invalidOption('db', options.db, 'a knex instance or a DbConfig');
  const ownsPool = !isKnex(options.db);
  const config = ownsPool ? checkDbConfig(options.db) : undefined;
  // A warm pool, as production pools are (HikariCP's default): under the legacy saturation Cloud's
  // queries wait in line like everyone's, but it never has to log in to the saturated server.
  const db = config ? createKnex(config, { poolMin: poolMax, poolMax }) : (options.db as Knex);

  const relayWaitMs = options.relayWaitMs ?? 1000;
  if (!Number.isInteger(relayWaitMs) || relayWaitMs < 0 || relayWaitMs > 60_000) throw invalidOption('relayWaitMs', options.relayWaitMs, 'an integer number of ms from 0 to 60000');
  const harpoonTimeoutMs = options.harpoonTimeoutMs ?? 5000;
  if (!Number.isInteger(harpoonTimeoutMs) || harpoonTimeoutMs < 100 || harpoonTimeoutMs > 600_000) {
    throw invalidOption('harpoonTimeoutMs', options.harpoonTimeoutMs, 'an integer number of ms from 100 to 600000');
  }
  const metrics = createCloudMetrics(registry);
  if (options.directEvents !== undefined && typeof options.directEvents?.insert !== 'function') {
    throw invalidOption('directEvents', typeof options.directEvents, 'the direct event path (legacy/cloud/direct-events.ts)');
  }
  const events: CloudEvents = { relayWaitMs, clock, ...(options.directEvents ? { direct: options.directEvents } : {}) };
  if (options.harpoon !== undefined) {
    const { urls, token } = checkHarpoon(options.harpoon);
    const timedFetch: typeof fetch = (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(harpoonTimeoutMs) });
    const client = (as: string): HarpoonClient => createHarpoonClient({ urls, token: as, fetch: timedFetch });
    events.harpoon = client(token);
    events.asCustomer = client;
    events.relay = createOutboxRelay({ db, harpoon: events.harpoon, logger, metrics, ...options.outbox });
    const relay = events.relay;
    metrics.outboxPending.source = () => relay.pending();
    metrics.outboxHealth.source = () => readOutboxHealth(db);
  }
  const deps: CloudDeps = { db, logger, metrics, bodyLimit, events };
  const router = createRouter();
  addDropletRoutes(router, deps);
  addActionRoutes(router, deps);

  let readyUntil = 0;
  let lastReady = false;
  async function ready(): Promise<boolean> {
    const now = clock().getTime();
    if (now < readyUntil) return lastReady;
    try {
      await db.raw('SELECT 1');
      lastReady = true;
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'database not reachable');
      lastReady = false;
    }
    readyUntil = now + READY_TTL_MS;
    return lastReady;
  }

  const http = createHttpService({ name: 'cloud', router, registry, logger, host, port, ready });
  let closing: Promise<void> | undefined;

  return {
    async start() {
      if (closing) throw cloudError('CLOUD_ERR_INTERNAL', 'this Cloud was closed; create a new one');
      // Fail at start-up, not on the first customer's request, when the grants or password are wrong.
      try {
        await db('regions').first('id');
        if (ownsPool) await warmPool(db, poolMax);
        // Recovery: rows a killed Cloud (or one stopped during a Harpoon outage) left are taken once their lease expired.
        await events.relay?.start();
      } catch (cause) {
        const where = config ? describeDb(config) : 'the given knex';
        throw cloudError(
          'CLOUD_ERR_DATABASE_UNAVAILABLE',
          `cannot read the regions table or the event outbox as ${where}: ${(cause as Error).message}; check the URL, the migrations and the cloud user's grants`,
          cause,
        );
      }
      return http.start();
    },
    close() {
      closing ??= (async () => {
        await http.close();
        // After the last request: every row it committed is with the relay, or in MySQL for the next start.
        await events.relay?.close();
        if (ownsPool) await db.destroy();
        logger.info('cloud closed');
      })();
      return closing;
    },
  };
}
