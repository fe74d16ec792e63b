/**
 * Runs one Scheduler V2 replica from the environment:
 *   SCHEDULER_V2_MYSQL_URL     mysql://scheduler_v2:<password>@host:port/<database> (required)
 *   SCHEDULER_V2_METRICS_URLS  comma-separated host-metrics endpoints, each `url` or `name=url` (required)
 *   SCHEDULER_V2_REPLICA_ID    unique per replica (default: host-pid-random)
 *   SCHEDULER_V2_MODE          active | shadow | follow-cutover (default active; follow-cutover: the
 *                              `scheduling` cutover row decides, see followCutover)
 *   SCHEDULER_V2_POLICY        v1-compatible | spread | bin-pack (default v1-compatible)
 *   SCHEDULER_V2_REGIONS       comma-separated region slugs this replica schedules (default all)
 *   SCHEDULER_V2_BATCH_SIZE, SCHEDULER_V2_POLL_MS, SCHEDULER_V2_LEASE_MS, SCHEDULER_V2_WAIT_RETRY_MS,
 *   SCHEDULER_V2_MAX_STALENESS_MS, SCHEDULER_V2_SCRAPE_MS   numbers (see SchedulerV2Options)
 *   SCHEDULER_V2_FAULT_PAUSE_AFTER_CLAIM_MS  fault injection: sleep after each claim (drills and tests)
 *   SCHEDULER_V2_FAULT_PAUSE_BEFORE_PLACE_MS fault injection, Harpoon mode: sleep between a reservation and its placement
 *   SCHEDULER_V2_OPTIONS       JSON (optional): {"harpoon":{"urls":[…],"token":"…"},"state":{"url":"…","token":"…","intervalMs":1000}}
 *                              harpoon: follow `event-writes` (at full: queue and placements through Harpoon, no
 *                              statement on `events`); state: read the cutover state from the cutover admin over
 *                              HTTP instead of MySQL
 *   SCHEDULER_V2_TOKENS        JSON (optional): admin tokens POST /explain and GET /decisions accept, name →
 *                              {"sha256": "<hex digest>", "scopes": ["explain", "placements"], "expiresAt": "<ISO>"}
 *                              (lib/auth/admin-token.ts; digests, so the replica holds no usable token). Without
 *                              it both routes answer 401.
 *   SCHEDULER_V2_EXPLAIN_CONCURRENCY  /explain requests answered at once (default 2; more get 429)
 *   PORT                       listen port for /metrics, /explain, … (default 0: any free port)
 *   HOST                       listen address (default 127.0.0.1)
 *   LOG_LEVEL                  pino level (default info)
 *
 *   SCHEDULER_V2_MYSQL_URL=mysql://scheduler_v2:…@127.0.0.1:3306/strangler_demo \
 *   SCHEDULER_V2_METRICS_URLS=nyc1=http://127.0.0.1:9101/metrics node --import tsx scheduler/main.ts
 */
import { parseFollowerOptions, stateSourceFor } from '../lib/cutover/follower-options.ts';
import type { AdminTokenSpecs } from '../lib/auth/admin-token.ts';
import { parseMysqlUrl } from '../lib/db/config.ts';
import { invalidOption } from '../lib/errors.ts';
import { runMain } from '../lib/process/run-main.ts';
import { createLogger } from '../lib/logger.ts';
import { createSchedulerV2, type SchedulerV2Options } from './create-scheduler-v2.ts';
import type { MetricsEndpoint } from './scraper.ts';
import type { PolicyId } from './scorers.ts';

const logger = createLogger({ name: 'scheduler-v2' });
const env = process.env;

function num(name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw invalidOption(name, raw, 'a number');
  return n;
}

function endpoints(raw: string | undefined): MetricsEndpoint[] {
  if (!raw) throw invalidOption('SCHEDULER_V2_METRICS_URLS', raw, 'comma-separated host-metrics URLs (url or name=url)');
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry, i) => {
      const eq = entry.indexOf('=');
      const named = eq > 0 && !entry.slice(0, eq).includes('/');
      return named ? { name: entry.slice(0, eq), url: entry.slice(eq + 1) } : { name: `endpoint-${i}`, url: entry };
    });
}

/** SCHEDULER_V2_TOKENS: JSON name → { sha256 | token, scopes, expiresAt? }; the verifier validates the rest and never echoes it. */
function tokens(raw: string | undefined): AdminTokenSpecs | undefined {
  if (!raw) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidOption('SCHEDULER_V2_TOKENS', '[unparsable]', 'a JSON object of name → {"sha256", "scopes"}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidOption('SCHEDULER_V2_TOKENS', '[not an object]', 'a JSON object of name → {"sha256", "scopes"}');
  return Object.fromEntries(
    Object.entries(parsed as Record<string, unknown>).map(([name, spec]) => {
      const s = spec as { expiresAt?: unknown } | null;
      return [name, s && typeof s === 'object' && typeof s.expiresAt === 'string' ? { ...s, expiresAt: new Date(s.expiresAt) } : spec];
    }),
  ) as AdminTokenSpecs;
}

async function createFromEnv() {
  const json = parseFollowerOptions('SCHEDULER_V2_OPTIONS', env.SCHEDULER_V2_OPTIONS);
  const url = env.SCHEDULER_V2_MYSQL_URL;
  if (!url) throw invalidOption('SCHEDULER_V2_MYSQL_URL', url, 'mysql://scheduler_v2:<password>@host:port/<database>');
  const port = Number(env.PORT ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('PORT', env.PORT, 'an integer from 0 to 65535');
  const options: SchedulerV2Options = {
    db: parseMysqlUrl(url),
    metricsEndpoints: endpoints(env.SCHEDULER_V2_METRICS_URLS),
    ...(env.SCHEDULER_V2_MODE === 'follow-cutover'
      ? { followCutover: true }
      : { mode: (env.SCHEDULER_V2_MODE as SchedulerV2Options['mode']) ?? 'active' }),
    policy: (env.SCHEDULER_V2_POLICY as PolicyId | undefined) ?? 'v1-compatible',
    ...(env.SCHEDULER_V2_REPLICA_ID ? { replicaId: env.SCHEDULER_V2_REPLICA_ID } : {}),
    ...(env.SCHEDULER_V2_REGIONS ? { regions: env.SCHEDULER_V2_REGIONS.split(',').map((r) => r.trim()).filter(Boolean) } : {}),
    batchSize: num('SCHEDULER_V2_BATCH_SIZE'),
    pollIntervalMs: num('SCHEDULER_V2_POLL_MS'),
    leaseMs: num('SCHEDULER_V2_LEASE_MS'),
    waitRetryMs: num('SCHEDULER_V2_WAIT_RETRY_MS'),
    maxStalenessMs: num('SCHEDULER_V2_MAX_STALENESS_MS'),
    scrapeIntervalMs: num('SCHEDULER_V2_SCRAPE_MS'),
    faults: { pauseAfterClaimMs: num('SCHEDULER_V2_FAULT_PAUSE_AFTER_CLAIM_MS'), pauseBeforePlaceMs: num('SCHEDULER_V2_FAULT_PAUSE_BEFORE_PLACE_MS') },
    ...(json.harpoon ? { harpoon: json.harpoon } : {}),
    // Built here, owned by the replica (it starts and closes it): the cutover state over HTTP, no MySQL read.
    ...(json.state ? { stateSource: stateSourceFor(json.state, logger)! } : {}),
    ...(env.SCHEDULER_V2_TOKENS ? { tokens: tokens(env.SCHEDULER_V2_TOKENS) } : {}),
    explainConcurrency: num('SCHEDULER_V2_EXPLAIN_CONCURRENCY'),
    port,
    host: env.HOST ?? '127.0.0.1',
    logger,
  };
  return createSchedulerV2(options);
}

void runMain({
  name: 'scheduler v2',
  logger,
  internalCode: 'SCHEDULER_ERR_INTERNAL',
  create: createFromEnv,
  started: ({ url }, scheduler) => logger.info({ replica: scheduler.replicaId, listening: url ?? null }, 'scheduler v2 ready'),
});
