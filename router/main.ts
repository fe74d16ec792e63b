/**
 * Runs one Event Router from the environment:
 *   ROUTER_MYSQL_URL     mysql://event_router:<password>@host:port/<database> (required)
 *   ROUTER_REGION        region slug this router serves, e.g. nyc1 (required)
 *   ROUTER_HV_KEYS_FILE  the hypervisor key ring file (lib/auth/hypervisor-keys.ts), re-read when it changes;
 *   ROUTER_HV_KEYS       or the ring itself as JSON (one of the two is required)
 *   PORT                 listen port (default 8090; 0 picks a free one)
 *   HOST                 listen address (default 127.0.0.1)
 *   ROUTER_POLL_MS       poll interval (default 1000)
 *   ROUTER_POOL_SIZE     MySQL connections (default 5: one kept for the poll, the rest for acks)
 *   LOG_LEVEL            pino level (default info)
 *   ROUTER_LEGACY_SOURCE URL of a module whose default export is the legacy event source (an EventSourceFactory),
 *                        set by the wiring of the legacy stages (legacy/router/mysql-source.ts's MYSQL_SOURCE_MODULE);
 *                        without it the router reads Harpoon only, and ROUTER_OPTIONS.harpoon is required
 *   ROUTER_OPTIONS       JSON (optional): {"harpoon":{"urls":[…],"token":"…"},"state":{"url":"…","token":"…","intervalMs":1000}}
 *                        harpoon: follow `event-writes` (at full: events from Harpoon, no statement on `events`);
 *                        state: read the cutover state from the cutover admin over HTTP instead of MySQL
 *
 *   ROUTER_MYSQL_URL=mysql://event_router:…@127.0.0.1:3306/strangler_demo ROUTER_REGION=nyc1 \
 *     node --import tsx router/main.ts
 */
import { parseMysqlUrl } from '../lib/db/config.ts';
import { parseKeyRing, type HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';
import { invalidOption } from '../lib/errors.ts';
import { runMain } from '../lib/process/run-main.ts';
import { createLogger } from '../lib/logger.ts';
import { parseFollowerOptions, stateSourceFor } from '../lib/cutover/follower-options.ts';
import { createEventRouter } from './event-router.ts';
import type { EventSourceFactory } from './event-source.ts';

const logger = createLogger({ name: 'event-router' });

/** The legacy source by module URL: this process never names legacy code itself. */
async function legacySourceFrom(url: string | undefined): Promise<EventSourceFactory | undefined> {
  if (!url) return undefined;
  if (!/^file:\/\//.test(url)) throw invalidOption('ROUTER_LEGACY_SOURCE', url, 'a file:// URL of a module');
  const mod = (await import(url)) as { default?: unknown };
  if (typeof mod.default !== 'function') throw invalidOption('ROUTER_LEGACY_SOURCE', url, 'a module whose default export creates an event source');
  return mod.default as EventSourceFactory;
}

/** The key ring from ROUTER_HV_KEYS_FILE (followed as it changes) or ROUTER_HV_KEYS; errors never echo a key. */
function hypervisorKeysFrom(env: NodeJS.ProcessEnv): HypervisorKeyRing | { file: string } {
  if (env.ROUTER_HV_KEYS_FILE) return { file: env.ROUTER_HV_KEYS_FILE };
  if (!env.ROUTER_HV_KEYS) throw invalidOption('ROUTER_HV_KEYS_FILE', undefined, 'the path of the hypervisor key ring (or ROUTER_HV_KEYS, the ring as JSON)');
  try {
    return parseKeyRing(JSON.parse(env.ROUTER_HV_KEYS), 'ROUTER_HV_KEYS');
  } catch {
    throw invalidOption('ROUTER_HV_KEYS', '[redacted]', 'a hypervisor key ring as JSON');
  }
}

async function createFromEnv() {
  const env = process.env;
  const json = parseFollowerOptions('ROUTER_OPTIONS', env.ROUTER_OPTIONS);
  const url = env.ROUTER_MYSQL_URL;
  if (!url) throw invalidOption('ROUTER_MYSQL_URL', url, 'mysql://event_router:<password>@host:port/<database>');
  const region = env.ROUTER_REGION;
  if (!region) throw invalidOption('ROUTER_REGION', region, 'a region slug such as nyc1');
  const port = Number(env.PORT ?? 8090);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('PORT', env.PORT, 'an integer from 0 to 65535');
  const pollIntervalMs = Number(env.ROUTER_POLL_MS ?? 1000);
  const poolSize = Number(env.ROUTER_POOL_SIZE ?? 5);
  const legacySource = await legacySourceFrom(env.ROUTER_LEGACY_SOURCE);
  const router = createEventRouter({
    db: parseMysqlUrl(url),
    region,
    hypervisorKeys: hypervisorKeysFrom(env),
    pollIntervalMs,
    poolSize,
    ...(json.harpoon ? { harpoon: json.harpoon } : {}),
    ...(legacySource ? { legacySource } : {}),
    // Built here, owned by the router (it starts and closes it): the cutover state over HTTP, no MySQL read.
    ...(json.state ? { stateSource: stateSourceFor(json.state, logger)! } : {}),
    port,
    host: env.HOST ?? '127.0.0.1',
    logger,
  });
  return router;
}

void runMain({
  name: 'event router',
  logger,
  internalCode: 'ROUTER_ERR_INTERNAL',
  create: createFromEnv,
});
