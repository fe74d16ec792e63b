/**
 * Runs the legacy Cloud API from the environment:
 *   CLOUD_MYSQL_URL  mysql://cloud:<password>@host:port/<database> (required)
 *   PORT             listen port (default 8080; 0 picks a free one)
 *   HOST             listen address (default 127.0.0.1)
 *   LOG_LEVEL        pino level (default info)
 *   CLOUD_HARPOON_URLS   Harpoon base URLs, comma-separated (event-writes; with CLOUD_HARPOON_TOKEN)
 *   CLOUD_HARPOON_TOKEN  Cloud's Harpoon service token (the `cloud=` entry of HARPOON_TOKENS)
 *   CLOUD_RELAY_WAIT_MS  how long a write waits for Harpoon before answering (default 1000)
 *
 *   CLOUD_MYSQL_URL=mysql://cloud:…@127.0.0.1:3306/strangler_demo node --import tsx cloud/main.ts
 */
import { parseMysqlUrl } from '../lib/db/config.ts';
import { StranglerError, invalidOption } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { createCloud } from './create-cloud.ts';

const logger = createLogger({ name: 'cloud' });

async function main(): Promise<void> {
  const url = process.env.CLOUD_MYSQL_URL;
  if (!url) throw invalidOption('CLOUD_MYSQL_URL', url, 'mysql://cloud:<password>@host:port/<database>');
  const port = Number(process.env.PORT ?? 8080);
  if (!Number.isInteger(port)) throw invalidOption('PORT', process.env.PORT, 'an integer from 0 to 65535');
  const harpoonUrls = (process.env.CLOUD_HARPOON_URLS ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
  const harpoonToken = process.env.CLOUD_HARPOON_TOKEN;
  if (harpoonUrls.length > 0 && !harpoonToken) throw invalidOption('CLOUD_HARPOON_TOKEN', harpoonToken, "Cloud's Harpoon service token, required with CLOUD_HARPOON_URLS");
  const relayWait = process.env.CLOUD_RELAY_WAIT_MS;
  const cloud = createCloud({
    db: parseMysqlUrl(url),
    port,
    host: process.env.HOST ?? '127.0.0.1',
    logger,
    ...(harpoonUrls.length > 0 ? { harpoon: { urls: harpoonUrls, token: harpoonToken! } } : {}),
    ...(relayWait === undefined ? {} : { relayWaitMs: Number(relayWait) }),
  });
  const stop = () => {
    void cloud.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await cloud.start();
  } catch (err) {
    await cloud.close();
    throw err;
  }
}

main().catch((err: unknown) => {
  const code = err instanceof StranglerError ? err.code : 'CLOUD_ERR_INTERNAL';
  logger.fatal({ code, err: err instanceof Error ? err.message : String(err) }, 'cloud failed to start');
  process.exitCode = 1;
});
