import type { AdminTokenSpecs } from '../../lib/auth/admin-token.ts';
import { parseMysqlUrl } from '../../lib/db/config.ts';
import { StranglerError } from '../../lib/errors.ts';
import { loadProxyConfigFile, type ProxyConfig } from '../../proxy/config.ts';
import { createCutoverAdmin } from '../../proxy/cutover/admin.ts';
import { loadPlanFile, planServices, type CutoverPlan } from '../../proxy/cutover/plan.ts';
import { webhookSecretsFromEnv } from '../../proxy/cutover/webhooks.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, UsageError, intOption, waitForStop, reportInvalidFile, type CommandIO } from '../command.ts';

export interface AdminRunOptions {
  plan: string | undefined;
  config: string | undefined;
  port: string | undefined;
  host: string | undefined;
  watchIntervalMs: string | undefined;
  json: boolean;
  seconds?: number;
}

/**
 * `strangler serve admin`: the cutover admin API (state in MySQL, soak
 * watcher, gates) from a plan file and the proxy config's `services`, its
 * database and tokens from the environment:
 *   ADMIN_MYSQL_URL        mysql://proxy:<password>@host:port/<database> (required; `strangler db migrate` first)
 *   STRANGLER_ADMIN_TOKEN  the operator's token, every scope (required)
 *   STRANGLER_STATE_TOKEN  a read-only token for followers: proxies with state.admin, routers (optional)
 *   ADMIN_OBSERVER_MYSQL_URL  a user with PROCESS and SELECT on the event tables, for invariant and budget gates (optional)
 *   STRANGLER_WEBHOOK_SECRET_<NAME>  the signing secret each plan webhook names (runbooks/autopilot.md#webhooks)
 */
export async function runAdminFromFiles(io: CommandIO, options: AdminRunOptions): Promise<number> {
  const planFile = options.plan ?? io.env.ADMIN_PLAN_FILE;
  if (!planFile) throw new UsageError('name the plan: --plan FILE (or ADMIN_PLAN_FILE)');
  const configFile = options.config ?? io.env.PROXY_CONFIG_FILE;
  let plan: CutoverPlan;
  try {
    plan = loadPlanFile(planFile);
  } catch (err) {
    if (err instanceof StranglerError && err.code === 'CUTOVER_ERR_INVALID_PLAN') return reportInvalidFile(io, options.json, 'cutover plan', planFile, err);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--plan ${planFile}: no such file`);
    throw err;
  }
  let config: ProxyConfig | undefined;
  if (configFile) {
    try {
      config = loadProxyConfigFile(configFile);
    } catch (err) {
      if (err instanceof StranglerError && err.code === 'PROXY_ERR_INVALID_CONFIG') return reportInvalidFile(io, options.json, 'proxy config', configFile, err);
      throw err;
    }
  }
  const mysqlUrl = io.env.ADMIN_MYSQL_URL;
  if (!mysqlUrl) throw new UsageError('set ADMIN_MYSQL_URL to mysql://<user>:<password>@host:port/<database> (the cutover state; run "strangler db migrate" on it first)');
  const operator = io.env.STRANGLER_ADMIN_TOKEN;
  if (!operator) throw new UsageError('set STRANGLER_ADMIN_TOKEN (at least 16 characters): the operator token the CLI and the autopilot use');
  const tokens: AdminTokenSpecs = { operator };
  if (io.env.STRANGLER_STATE_TOKEN) tokens.followers = { token: io.env.STRANGLER_STATE_TOKEN, scopes: ['read'] };
  const port = intOption('port', options.port ?? io.env.PORT, 9400, 0, 65535);
  const watchIntervalMs = options.watchIntervalMs === undefined ? undefined : intOption('watch-interval-ms', options.watchIntervalMs, 3000, 50, 600_000);
  const logger = cliLogger(io.env);
  const admin = createCutoverAdmin({
    db: parseMysqlUrl(mysqlUrl),
    tokens,
    services: config?.services ?? {},
    plan,
    port,
    host: options.host ?? io.env.HOST ?? '127.0.0.1',
    logger,
    ...(watchIntervalMs !== undefined ? { watchIntervalMs } : {}),
    ...(io.env.ADMIN_OBSERVER_MYSQL_URL ? { observer: parseMysqlUrl(io.env.ADMIN_OBSERVER_MYSQL_URL) } : {}),
    webhookSecrets: webhookSecretsFromEnv(plan, io.env),
  });
  try {
    const { url } = await admin.start();
    const missing = admin.controller.missingServices();
    if (options.json) {
      io.stdout.write(JSON.stringify({ service: 'admin', url, features: Object.keys(plan.features), services: planServices(plan), missing_services: missing }) + '\n');
    } else {
      io.stdout.write(`cutover admin listening on ${url} (features ${Object.keys(plan.features).join(', ')}); strangler cutover --url ${url} …\n`);
      if (missing.length) io.stdout.write(`warning: the plan's gates read services the config's "services" does not name: ${missing.join(', ')} (their gates read "error")\n`);
    }
    await waitForStop(io.signal, options.seconds);
    return EXIT.ok;
  } finally {
    await admin.close();
  }
}
