/**
 * Runs one Harpoon replica from the environment:
 *   HARPOON_MYSQL_URL     mysql://harpoon:<password>@host:port/<database> (required)
 *   HARPOON_TOKENS        service tokens, name=token[=scope+scope[=region]][,…] (required; each token ≥ 16
 *                         characters; a region binds the token to that region's events, as a router's)
 *   HARPOON_PEERS         the other replicas' base URLs, comma-separated (default: none)
 *   HARPOON_REPLICA       this replica's name in logs (default: random)
 *   PORT                  listen port (default 8100; 0 picks a free one)
 *   HOST                  listen address (default 127.0.0.1)
 *   HARPOON_POOL_SIZE     MySQL connections (default 4)
 *   HARPOON_WRITERS       batches written at once, of those connections (default: pool − 1, at most 3)
 *   HARPOON_MAX_QUEUE     write-queue bound before 429 (default 5000)
 *   HARPOON_MAX_DELAY_MS  group-commit delay (default 2)
 *   HARPOON_MAX_BATCH     items per transaction (default 500)
 *   HARPOON_LOG_RETENTION_MS  event_log entries younger than this are never pruned (default 3600000)
 *   LOG_LEVEL             pino level (default info)
 *
 *   HARPOON_MYSQL_URL=mysql://harpoon:…@127.0.0.1:3306/strangler_demo HARPOON_TOKENS=cloud=… \
 *     node --import tsx harpoon/main.ts
 */
import { parseMysqlUrl } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import { runMain } from '../lib/process/run-main.ts';
import { createLogger } from '../lib/logger.ts';
import { createHarpoon } from './create-harpoon.ts';
import type { HarpoonScope, ServiceTokenSpec } from './auth.ts';

const logger = createLogger({ name: 'harpoon' });

/** `name=token[=scope+scope[=region]],…`: without scopes a token holds every scope; with a region, only that region's events (harpoon/auth.ts). */
function parseTokens(raw: string | undefined): Record<string, ServiceTokenSpec> {
  const shape = 'name=token[=scope+scope[=region]][,name=token…]';
  if (!raw) throw invalidOption('HARPOON_TOKENS', '(not shown)', shape);
  const tokens: Record<string, ServiceTokenSpec> = {};
  for (const pair of raw.split(',')) {
    const [name, token, scopes, region, extra] = pair.trim().split('=');
    if (!name || !token || extra !== undefined || (region !== undefined && scopes === undefined)) throw invalidOption('HARPOON_TOKENS', '(not shown)', shape);
    tokens[name] = scopes === undefined ? token : { token, scopes: scopes.split('+') as HarpoonScope[], ...(region === undefined ? {} : { region }) };
  }
  return tokens;
}

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw invalidOption(name, raw, 'a number');
  return n;
}

async function createFromEnv() {
  const env = process.env;
  const url = env.HARPOON_MYSQL_URL;
  if (!url) throw invalidOption('HARPOON_MYSQL_URL', url, 'mysql://harpoon:<password>@host:port/<database>');
  const port = intEnv('PORT', 8100);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('PORT', env.PORT, 'an integer from 0 to 65535');
  const harpoon = createHarpoon({
    db: parseMysqlUrl(url),
    tokens: parseTokens(env.HARPOON_TOKENS),
    peers: (env.HARPOON_PEERS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
    ...(env.HARPOON_REPLICA ? { replica: env.HARPOON_REPLICA } : {}),
    poolSize: intEnv('HARPOON_POOL_SIZE', 4),
    ...(env.HARPOON_WRITERS ? { writers: intEnv('HARPOON_WRITERS', 3) } : {}),
    maxQueue: intEnv('HARPOON_MAX_QUEUE', 5000),
    maxDelayMs: intEnv('HARPOON_MAX_DELAY_MS', 2),
    maxBatchRows: intEnv('HARPOON_MAX_BATCH', 500),
    prune: { retentionMs: intEnv('HARPOON_LOG_RETENTION_MS', 3_600_000) },
    port,
    host: env.HOST ?? '127.0.0.1',
    logger,
  });
  return harpoon;
}

void runMain({
  name: 'harpoon',
  logger,
  internalCode: 'HARPOON_ERR_INTERNAL',
  create: createFromEnv,
});
