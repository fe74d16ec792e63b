import { parseMysqlUrl } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import { runMain } from '../lib/process/run-main.ts';
import { createLogger } from '../lib/logger.ts';
import { createCloud, type CloudOptions } from './create-cloud.ts';

/**
 * Runs a Cloud API from the environment until SIGINT/SIGTERM (cloud/main.ts,
 * and legacy/cloud/main.ts with the direct event path):
 *   CLOUD_MYSQL_URL  mysql://cloud:<password>@host:port/<database> (required)
 *   PORT             listen port (default 8080; 0 picks a free one)
 *   HOST             listen address (default 127.0.0.1)
 *   LOG_LEVEL        pino level (default info)
 *   CLOUD_HARPOON_URLS   Harpoon base URLs, comma-separated (event-writes; with CLOUD_HARPOON_TOKEN)
 *   CLOUD_HARPOON_TOKEN  Cloud's Harpoon service token (the `cloud=` entry of HARPOON_TOKENS)
 *   CLOUD_RELAY_WAIT_MS  how long a write waits for Harpoon before answering (default 1000)
 *   CLOUD_OUTBOX_LEASE_MS  how long an outbox row stays this Cloud's without a renewal (default 10000)
 *   CLOUD_OUTBOX_SCAN_MS   how often the relay renews its leases and takes expired ones (default 2000)
 *
 * @example
 *   runCloudFromEnv(process.env, { directEvents }); // the whole of legacy/cloud/main.ts
 */
export function runCloudFromEnv(env: NodeJS.ProcessEnv, wiring: Pick<CloudOptions, 'directEvents'> = {}): void {
  const logger = createLogger({ name: 'cloud' });

  async function createFromEnv() {
    const url = env.CLOUD_MYSQL_URL;
    if (!url) throw invalidOption('CLOUD_MYSQL_URL', url, 'mysql://cloud:<password>@host:port/<database>');
    const port = Number(env.PORT ?? 8080);
    if (!Number.isInteger(port)) throw invalidOption('PORT', env.PORT, 'an integer from 0 to 65535');
    const harpoonUrls = (env.CLOUD_HARPOON_URLS ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
    const harpoonToken = env.CLOUD_HARPOON_TOKEN;
    if (harpoonUrls.length > 0 && !harpoonToken) throw invalidOption('CLOUD_HARPOON_TOKEN', harpoonToken, "Cloud's Harpoon service token, required with CLOUD_HARPOON_URLS");
    const relayWait = env.CLOUD_RELAY_WAIT_MS;
    const outboxMs = (name: string): number | undefined => (env[name] === undefined ? undefined : Number(env[name]));
    const leaseMs = outboxMs('CLOUD_OUTBOX_LEASE_MS');
    const scanMs = outboxMs('CLOUD_OUTBOX_SCAN_MS');
    const cloud = createCloud({
      db: parseMysqlUrl(url),
      port,
      host: env.HOST ?? '127.0.0.1',
      logger,
      ...wiring,
      ...(harpoonUrls.length > 0 ? { harpoon: { urls: harpoonUrls, token: harpoonToken! } } : {}),
      ...(relayWait === undefined ? {} : { relayWaitMs: Number(relayWait) }),
      outbox: { ...(leaseMs === undefined ? {} : { leaseMs }), ...(scanMs === undefined ? {} : { scanMs }) },
    });
    return cloud;
  }

  void runMain({
    name: 'cloud',
    logger,
    internalCode: 'CLOUD_ERR_INTERNAL',
    create: createFromEnv,
  });
}
