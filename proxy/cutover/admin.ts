import type { IncomingMessage } from 'node:http';
import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import type { DbConfig } from '../../lib/db/config.ts';
import { createKnex, warmPool } from '../../lib/db/knex.ts';
import { createAdminTokenVerifier, MIN_ADMIN_TOKEN_LENGTH, type AdminScope, type AdminTokenSpecs, type AdminTokenVerifier } from '../../lib/auth/admin-token.ts';
import { invalidOption, quote, StranglerError } from '../../lib/errors.ts';
import { readJsonBody } from '../../lib/http/json-body.ts';
import { sendJson } from '../../lib/http/respond.ts';
import { createRouter, type Handler, type RequestContext, type Router } from '../../lib/http/router.ts';
import { createHttpService } from '../../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../../lib/logger.ts';
import type { FeatureState } from '../../lib/cutover/types.ts';
import { createAutopilot, type Autopilot } from './autopilot.ts';
import { autopilotRoutes } from './autopilot-routes.ts';
import { createAutopilotStore } from './autopilot-store.ts';
import { createCutoverController, type CutoverController } from './controller.ts';
import { createGateProviders } from './providers.ts';
import { createWebhooks } from './webhooks.ts';
import type { FeatureEffects } from './effects.ts';
import { CutoverError, cutoverError, type CutoverErrorCode } from './errors.ts';
import type { FetchLike, ServiceMap } from './gates.ts';
import { planFeature, loadDefaultPlan, planServices, type CutoverPlan } from './plan.ts';
import { createCutoverStateReader, createCutoverStateStore, type CutoverStateReader, type CutoverStateStore } from './state-store.ts';

/**
 * The admin API behind `strangler cutover`. Every route needs
 * `Authorization: Bearer <token>`; the token's name (its key in `tokens`)
 * is the actor recorded in the history. Mount it on any service's router
 * with addCutoverRoutes, or run it alone with createCutoverAdmin.
 */

/** Admin bodies are a reason and a target: 16 KiB is generous. */
export const ADMIN_BODY_LIMIT = 16 * 1024;
export const MIN_TOKEN_LENGTH = MIN_ADMIN_TOKEN_LENGTH;
const MAX_REASON = 500;

export interface CutoverRoutesOptions {
  controller: CutoverController;
  /**
   * token name (the actor in the history) → token. At least one; each at least 16 characters.
   * A bare string holds every scope; followers get `{ token, scopes: ['read'] }` (lib/auth/admin-token.ts).
   */
  tokens: AdminTokenSpecs;
  logger?: Logger;
  /**
   * Mount point before `/cutover/…`, e.g. `/admin` to serve `/admin/cutover/status` on the proxy's admin port.
   * The CLI then needs the prefix in its URL: `--url http://127.0.0.1:9400/admin`. Default: none.
   */
  prefix?: string;
  /**
   * Where GET /cutover/state reads from: an in-memory reader (createCutoverAdmin passes its own,
   * so followers asking every second cost MySQL nothing). Without it, each request reads the store.
   */
  state?: Pick<CutoverStateReader, 'all' | 'lastReadAt'>;
  /** Features whose steps have side effects: moving them needs the `lockdown` scope too (default: lockdown). */
  effectFeatures?: readonly string[];
  /** The analysis loop and autopilot: adds its routes (autopilot-routes.ts) and its view to GET /cutover/status. */
  autopilot?: Autopilot;
}

const AUTH_MESSAGES = {
  missing: 'send an admin token as "Authorization: Bearer <token>" (strangler cutover --token or STRANGLER_ADMIN_TOKEN)',
  malformed: 'the Authorization header must be "Bearer <token>"',
  invalid: 'the admin token is not valid',
  expired: 'the admin token has expired (rotated out); use the current one',
} as const;

/** The actor the request's token names, or a 401; a 403 when its scopes do not cover `scope`. */
function authorize(req: IncomingMessage, verifier: AdminTokenVerifier, scope: AdminScope): string {
  const auth = verifier.authenticate(req.headers.authorization);
  if (!auth.ok) throw cutoverError('CUTOVER_ERR_UNAUTHORIZED', AUTH_MESSAGES[auth.reason]);
  if (!auth.scopes.has(scope)) {
    throw cutoverError('CUTOVER_ERR_FORBIDDEN', `the token "${auth.actor}" lacks the "${scope}" scope (it holds ${[...auth.scopes].join(', ')}); nothing was changed`);
  }
  return auth.actor;
}

/** mysql2 errors carry `sqlMessage`, or a socket code; knex pool timeouts say so by name. */
function isDatabaseError(err: unknown): boolean {
  const e = err as { sqlMessage?: unknown; code?: unknown; name?: unknown; errno?: unknown };
  if (typeof e !== 'object' || e === null) return false;
  if (e.sqlMessage !== undefined || e.name === 'KnexTimeoutError') return true;
  return typeof e.code === 'string' && /^(ER_|PROTOCOL_|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH)/.test(e.code);
}

const BODY_CODES: Record<string, CutoverErrorCode> = {
  HTTP_ERR_UNSUPPORTED_MEDIA_TYPE: 'CUTOVER_ERR_UNSUPPORTED_MEDIA_TYPE',
  HTTP_ERR_BODY_TOO_LARGE: 'CUTOVER_ERR_BODY_TOO_LARGE',
  HTTP_ERR_MALFORMED_JSON: 'CUTOVER_ERR_MALFORMED_JSON',
  HTTP_ERR_JSON_TOO_DEEP: 'CUTOVER_ERR_MALFORMED_JSON',
};

/** A POST body: `{}` when there is none (curl -X POST), else a JSON object with only `accepted` fields. */
async function readBody(req: IncomingMessage, accepted: readonly string[]): Promise<Record<string, unknown>> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if ((length === undefined || length === '0') && !chunked) return {};
  let body: unknown;
  try {
    body = await readJsonBody(req, { limit: ADMIN_BODY_LIMIT });
  } catch (err) {
    if (err instanceof StranglerError && err.code === 'HTTP_ERR_EMPTY_BODY') return {};
    if (err instanceof StranglerError && BODY_CODES[err.code]) throw cutoverError(BODY_CODES[err.code]!, err.message, {}, err);
    throw err;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw cutoverError('CUTOVER_ERR_VALIDATION', `body: must be a JSON object, got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`);
  }
  const obj = body as Record<string, unknown>;
  const unknown = Object.keys(obj).filter((k) => !accepted.includes(k));
  if (unknown.length > 0) {
    throw cutoverError('CUTOVER_ERR_VALIDATION', `${unknown[0]}: unknown field ${unknown.slice(0, 5).map(quote).join(', ')}; accepted fields are ${accepted.join(', ') || 'none'}`);
  }
  return obj;
}

function reasonOf(body: Record<string, unknown>): string | null {
  const r = body.reason;
  if (r === undefined || r === null) return null;
  if (typeof r !== 'string') throw cutoverError('CUTOVER_ERR_VALIDATION', `reason: must be a string, got ${quote(r)}`);
  if (r.length > MAX_REASON) throw cutoverError('CUTOVER_ERR_VALIDATION', `reason: at most ${MAX_REASON} characters, got ${r.length}`);
  return r;
}

function versionOf(body: Record<string, unknown>): number | undefined {
  const v = body.expected_version;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw cutoverError('CUTOVER_ERR_VALIDATION', `expected_version: must be a non-negative integer, got ${quote(v)}`);
  return v;
}

function checkQuery(query: URLSearchParams, accepted: readonly string[]): void {
  for (const key of new Set(query.keys())) {
    if (!accepted.includes(key)) throw cutoverError('CUTOVER_ERR_VALIDATION', `${key}: unknown query parameter; accepted are ${accepted.join(', ') || 'none'}`);
    if (query.getAll(key).length > 1) throw cutoverError('CUTOVER_ERR_VALIDATION', `${key}: given more than once`);
  }
}

function intQuery(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw cutoverError('CUTOVER_ERR_VALIDATION', `${name}: must be an integer from ${min} to ${max}, got ${quote(raw)}`);
  }
  return Number(raw);
}

/**
 * Adds the cutover routes to `router` (the proxy's admin router, say).
 *
 * @example
 *   addCutoverRoutes(adminRouter, { controller, tokens: { alice: process.env.ALICE_TOKEN! } });
 */
export function addCutoverRoutes(router: Router, options: CutoverRoutesOptions): Router {
  const { controller } = options;
  const verifier = createAdminTokenVerifier(options.tokens);
  const effectFeatures = new Set(options.effectFeatures ?? ['lockdown']);
  const prefix = options.prefix ?? '';
  if (typeof prefix !== 'string' || !/^(\/[A-Za-z0-9._-]+)*$/.test(prefix)) throw invalidOption('prefix', prefix, 'a path such as "/admin" (no trailing slash), or ""');
  const at = (path: string) => `${prefix}${path}`;
  const logger = (options.logger ?? silentLogger()).child({ component: 'cutover-admin' });

  /** Auth first (nothing is parsed or read for a caller without a token), then errors with details as JSON. */
  const guarded = (scope: AdminScope | ((ctx: RequestContext) => AdminScope), handler: (ctx: RequestContext, actor: string) => Promise<void>): Handler => {
    return async (ctx) => {
      try {
        const actor = authorize(ctx.req, verifier, typeof scope === 'function' ? scope(ctx) : scope);
        await handler(ctx, actor);
      } catch (err) {
        if (err instanceof CutoverError && err.status < 500 && err.status !== 413 && !ctx.res.headersSent) {
          if (err.code === 'CUTOVER_ERR_UNAUTHORIZED' || err.code === 'CUTOVER_ERR_FORBIDDEN') logger.warn({ requestId: ctx.requestId, path: ctx.req.url }, 'cutover admin request without a valid token');
          sendJson(ctx.res, err.status, { code: err.code, message: err.message, ...err.details });
          return;
        }
        if (err instanceof StranglerError && err.status < 500) throw err; // 413: the service shell answers and drops the socket
        // Anything else is ours to log (with the request id) and to answer with a CUTOVER_ code and no detail.
        logger.error({ err, requestId: ctx.requestId, method: ctx.req.method, path: ctx.req.url?.split('?')[0] }, 'request failed');
        if (ctx.res.headersSent) {
          ctx.res.destroy();
          return;
        }
        const database = isDatabaseError(err);
        sendJson(ctx.res, database ? 503 : 500, {
          code: database ? 'CUTOVER_ERR_DATABASE_UNAVAILABLE' : 'CUTOVER_ERR_INTERNAL',
          message: `${database ? 'the cutover state could not be read or written (a change in flight was rolled back with its transaction); check the status before retrying' : 'internal error'}; see the service log for request ${ctx.requestId}`,
        });
      }
    };
  };

  const verb = (fn: (feature: string, actor: string, body: Record<string, unknown>) => Promise<unknown>, accepted: readonly string[]) =>
    // A step with side effects (lockdown's GRANT/REVOKE) needs the lockdown scope; the rest, operate.
    guarded((ctx) => (effectFeatures.has(ctx.params.feature ?? '') ? 'lockdown' : 'operate'), async (ctx, actor) => {
      // The feature is checked before the body is read: an unknown feature is 404 whatever the body.
      const feature = ctx.params.feature!;
      if (!planFeature(controller.plan, feature)) {
        throw cutoverError('CUTOVER_ERR_UNKNOWN_FEATURE', `no feature ${quote(feature)} in the cutover plan; the plan's features are ${Object.keys(controller.plan.features).join(', ')}`);
      }
      checkQuery(ctx.query, []);
      const body = await readBody(ctx.req, accepted);
      sendJson(ctx.res, 200, await fn(feature, actor, body));
    });

  router
    .add(
      'GET',
      at('/cutover/status'),
      guarded('read', async (ctx) => {
        checkQuery(ctx.query, []);
        const [features, shadow, effects, autopilot] = await Promise.all([controller.status(), controller.shadow(), controller.effects(), options.autopilot?.view()]);
        sendJson(ctx.res, 200, { features, shadow, ...(Object.keys(effects).length > 0 ? { effects } : {}), ...(autopilot ? { autopilot } : {}), now: new Date().toISOString() });
      }),
    )
    .add(
      'GET',
      at('/cutover/state'),
      guarded('read', async (ctx) => {
        checkQuery(ctx.query, []);
        // The followers' view (lib/cutover/http-state-source.ts): every feature's routing and version, nothing else.
        if (options.state) {
          sendJson(ctx.res, 200, { features: options.state.all(), read_at: options.state.lastReadAt?.toISOString() ?? null });
          return;
        }
        const features: FeatureState[] = (await controller.status()).map((f) => ({
          feature: f.feature,
          step: f.step,
          stepName: f.step_name,
          mode: f.mode,
          percent: f.percent,
          regions: f.regions,
          paused: f.paused,
          version: f.version,
          updatedAt: f.updated_at,
        }));
        sendJson(ctx.res, 200, { features, read_at: new Date().toISOString() });
      }),
    )
    .add(
      'GET',
      at('/cutover/plan'),
      guarded('read', async (ctx) => {
        checkQuery(ctx.query, []);
        sendJson(ctx.res, 200, { plan: controller.plan, services: planServices(controller.plan), missing_services: controller.missingServices() });
      }),
    )
    .add(
      'GET',
      at('/cutover/history'),
      guarded('read', async (ctx) => {
        checkQuery(ctx.query, ['feature', 'limit', 'before']);
        const feature = ctx.query.get('feature') ?? undefined;
        const limit = intQuery(ctx.query, 'limit', 1, 1000) ?? 50;
        const before = intQuery(ctx.query, 'before', 1, Number.MAX_SAFE_INTEGER);
        const entries = await controller.history({ ...(feature ? { feature } : {}), limit, ...(before !== undefined ? { beforeId: before } : {}) });
        sendJson(ctx.res, 200, { entries });
      }),
    )
    .add(
      'POST',
      at('/cutover/:feature/advance'),
      verb((feature, actor, body) => {
        if (body.override_preflight !== undefined && typeof body.override_preflight !== 'boolean') throw cutoverError('CUTOVER_ERR_VALIDATION', 'override_preflight: must be true or false');
        return controller.advance(feature, actor, reasonOf(body), {
          ...(versionOf(body) !== undefined ? { expectedVersion: versionOf(body)! } : {}),
          ...(body.override_preflight === true ? { overridePreflight: true } : {}),
        });
      }, ['reason', 'expected_version', 'override_preflight']),
    )
    .add(
      'POST',
      at('/cutover/:feature/rollback'),
      verb(
        (feature, actor, body) => {
          const to = body.to ?? 'legacy';
          if (to !== 'legacy' && to !== 'previous') throw cutoverError('CUTOVER_ERR_VALIDATION', `to: must be "legacy" or "previous", got ${quote(to)}`);
          const expectedVersion = versionOf(body);
          return controller.rollback(feature, { to, actor, reason: reasonOf(body), ...(expectedVersion !== undefined ? { expectedVersion } : {}) });
        },
        ['to', 'reason', 'expected_version'],
      ),
    )
    .add('POST', at('/cutover/:feature/pause'), verb((feature, actor, body) => controller.pause(feature, actor, reasonOf(body)), ['reason']))
    .add('POST', at('/cutover/:feature/resume'), verb((feature, actor, body) => controller.resume(feature, actor, reasonOf(body)), ['reason']));
  if (options.autopilot) {
    const routes = autopilotRoutes({
      autopilot: options.autopilot,
      guarded,
      verb,
      readBody: (ctx, accepted) => readBody(ctx.req, accepted),
      reasonOf,
      checkQuery,
      intQuery,
      features: Object.keys(controller.plan.features),
      effectFeatures,
    });
    for (const [method, path, handler] of routes) router.add(method, at(path), handler);
  }
  return router;
}

/** A fresh router with only the cutover routes. */
export function createCutoverRouter(options: CutoverRoutesOptions): Router {
  return addCutoverRoutes(createRouter(), options);
}

export interface CutoverAdminOptions {
  /** The proxy's MySQL user on the stack's database (a Knex is used as is and not closed). */
  db: DbConfig | Knex;
  tokens: AdminTokenSpecs;
  services: ServiceMap;
  /** Default: proxy/cutover/default-plan.json. */
  plan?: CutoverPlan;
  host?: string;
  port?: number;
  logger?: Logger;
  registry?: Registry;
  /** Run the analysis loop (soak watcher, continuous analysis, autopilot runs); default true. */
  watch?: boolean;
  watchIntervalMs?: number;
  scrapeTimeoutMs?: number;
  watcherActor?: string;
  rollbackAfterFailures?: number;
  fetch?: FetchLike;
  /** Side effects of steps (lockdown's REVOKE): proxy/cutover/effects.ts. */
  effects?: FeatureEffects;
  /** Extra sections of GET /cutover/status's `effects` (the controller's `reports`): the outbox's health, say. */
  reports?: Record<string, () => Promise<unknown>>;
  /**
   * The database observer of invariant and budget gates: a connection that may read PROCESSLIST and
   * the event tables (a Knex is used as is and not closed). Without it those gates read "error".
   */
  observer?: DbConfig | Knex;
  /** What each host keeps for itself, for the over-committed hosts invariant. */
  hostReserved?: { memory: number; disk: number };
  /** The plan's webhook secrets by name (main.ts reads them with webhookSecretsFromEnv). */
  webhookSecrets?: Record<string, string>;
  /** First webhook retry delay (doubles per attempt). Default 500 ms. */
  webhookBackoffMs?: number;
  /** How often the analysis loop looks for due runs (default: the shortest interval, at most 1 s). */
  autopilotTickMs?: number;
  /** How often the admin re-reads cutover_features for GET /cutover/state (default 500 ms). */
  stateIntervalMs?: number;
}

export interface CutoverAdmin {
  start(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
  readonly controller: CutoverController;
  /** The analysis loop and autopilot (started with the admin unless `watch: false`). */
  readonly autopilot: Autopilot;
  readonly store: CutoverStateStore;
  readonly router: Router;
}

function isKnex(db: DbConfig | Knex): db is Knex {
  return typeof db === 'function';
}

/**
 * The admin API as a service of its own (`/metrics`, `/healthz`, `/readyz`
 * included), with the soak watcher running.
 *
 * @example
 *   const admin = createCutoverAdmin({ db: serviceDbConfig(server, database, 'proxy', secret), tokens, services: { proxy: proxyAdminUrl } });
 *   const { url } = await admin.start();
 */
export function createCutoverAdmin(options: CutoverAdminOptions): CutoverAdmin {
  const logger = options.logger ?? silentLogger();
  const plan = options.plan ?? loadDefaultPlan();
  const ownsDb = !isKnex(options.db);
  // The control plane must work while the system it migrates saturates MySQL: its pool is opened at
  // start and kept (a login to a saturated server can wait longer than any timeout), see warmPool.
  const db = isKnex(options.db) ? options.db : createKnex(options.db, { poolMin: 4, poolMax: 4, connectTimeoutMs: 60_000 });
  const registry = options.registry ?? new Registry();
  const store = createCutoverStateStore({ db, features: Object.keys(plan.features) });
  const ownsObserver = options.observer !== undefined && !isKnex(options.observer);
  const observer = options.observer === undefined ? undefined : isKnex(options.observer) ? options.observer : createKnex(options.observer, { poolMin: 0, poolMax: 2, connectTimeoutMs: 60_000 });
  const webhooks = plan.webhooks?.length
    ? createWebhooks({ hooks: plan.webhooks, secrets: options.webhookSecrets ?? {}, registry, logger, ...(options.webhookBackoffMs !== undefined ? { backoffMs: options.webhookBackoffMs } : {}) })
    : undefined;
  const controller = createCutoverController({
    providers: createGateProviders({
      services: options.services,
      timeoutMs: options.scrapeTimeoutMs ?? 2000,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(observer ? { observer } : {}),
      ...(options.hostReserved ? { hostReserved: options.hostReserved } : {}),
    }),
    ...(webhooks ? { webhooks } : {}),
    store,
    plan,
    services: options.services,
    logger,
    registry,
    ...(options.watchIntervalMs !== undefined ? { watchIntervalMs: options.watchIntervalMs } : {}),
    ...(options.scrapeTimeoutMs !== undefined ? { scrapeTimeoutMs: options.scrapeTimeoutMs } : {}),
    ...(options.watcherActor !== undefined ? { watcherActor: options.watcherActor } : {}),
    ...(options.rollbackAfterFailures !== undefined ? { rollbackAfterFailures: options.rollbackAfterFailures } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.effects ? { effects: options.effects } : {}),
    ...(options.reports ? { reports: options.reports } : {}),
  });
  // Followers (routers, Scheduler V2) ask GET /cutover/state every second: one reader here answers
  // them all from memory, so their number costs MySQL nothing (lib/cutover/http-state-source.ts).
  const reader = createCutoverStateReader({ db, intervalMs: options.stateIntervalMs ?? 500, logger });
  const autopilot = createAutopilot({
    controller,
    store: createAutopilotStore({ db, features: Object.keys(plan.features) }),
    logger,
    registry,
    ...(webhooks ? { webhooks } : {}),
    ...(options.autopilotTickMs !== undefined ? { tickMs: options.autopilotTickMs } : {}),
  });
  const router = createCutoverRouter({
    autopilot,
    controller,
    tokens: options.tokens,
    logger,
    state: reader,
    effectFeatures: [...new Set(['lockdown', ...Object.keys(options.effects ?? {})])],
  });
  const http = createHttpService({
    name: 'cutover-admin',
    router,
    registry,
    logger,
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
    ready: async () => db.raw('SELECT 1').then(() => true, () => false),
  });
  let closing: Promise<void> | undefined;
  return {
    controller,
    autopilot,
    store,
    router,
    async start() {
      if (ownsDb) await warmPool(db, 4);
      await store.ensureRows();
      await reader.start();
      const missing = controller.missingServices();
      if (missing.length > 0) logger.warn({ missing }, 'the plan reads services that have no /metrics URL; their gates will read "error"');
      const address = await http.start();
      if (options.watch ?? true) autopilot.start();
      return address;
    },
    close() {
      closing ??= (async () => {
        await autopilot.close();
        await http.close();
        await webhooks?.flush();
        await reader.close();
        if (ownsObserver) await observer?.destroy();
        if (ownsDb) await db.destroy();
      })();
      return closing;
    },
  };
}
