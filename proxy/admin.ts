import { createHash, timingSafeEqual } from 'node:crypto';
import { Registry } from 'prom-client';
import { invalidOption } from '../lib/errors.ts';
import { sendJson } from '../lib/http/respond.ts';
import { createRouter, type Handler, type Router } from '../lib/http/router.ts';
import { createHttpService, type HttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { proxyError } from './errors.ts';
import type { ShadowSample } from './shadow.ts';
import type { UpstreamStatus } from './create-proxy.ts';

export interface ProxyAdminOptions {
  /** The admin token: every route added through `route()` needs `Authorization: Bearer <token>` (at least 16 characters). */
  token: string;
  /** What the built-in routes read: a proxy, a cluster, or anything with these methods. */
  proxy?: { shadowSamples(): ShadowSample[]; upstreams?(): UpstreamStatus[] };
  /** The admin's own metrics (and /metrics); pass the proxy's registry (or a cluster's) to serve the proxy_* series here too. */
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
}

export interface ProxyAdmin {
  /**
   * Adds a token-protected route (other components mount theirs here, e.g.
   * the cutover API): `admin.route('POST', '/admin/cutover/:feature/advance', handler)`.
   */
  route(method: string, pattern: string, handler: Handler): ProxyAdmin;
  /** Wraps a handler with the token check, for routers mounted elsewhere. */
  requireToken(handler: Handler): Handler;
  /** The underlying router; routes added to it directly are NOT token-protected. */
  readonly router: Router;
  start(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
  readonly http: HttpService;
}

const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The proxy's admin HTTP service, separate from the data port: the shared
 * shell (`/metrics`, `/healthz`, `/readyz`, JSON errors, X-Request-Id) plus
 * token-protected routes:
 * - `GET /admin/shadow/samples[?feature=&route=&result=mismatch|error&limit=N]` →
 *   `{ samples: ShadowSample[] }`, newest first;
 * - `GET /admin/upstreams` → `{ upstreams: [{ instance, url, healthy }] }`.
 *
 * @example
 *   const admin = createProxyAdmin({ token: process.env.STRANGLER_ADMIN_TOKEN!, proxy, registry: proxy.registry });
 *   admin.route('GET', '/admin/cutover/status', (ctx) => sendJson(ctx.res, 200, status()));
 *   await admin.start();
 */
export function createProxyAdmin(options: ProxyAdminOptions): ProxyAdmin {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', options, 'an object');
  if (typeof options.token !== 'string' || options.token.length < 16 || !/^[\x21-\x7e]+$/.test(options.token)) {
    // Never echo the token.
    throw invalidOption('token', typeof options.token === 'string' ? `[${options.token.length} characters]` : typeof options.token, 'a printable token of at least 16 characters');
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('port', options.port, 'an integer from 0 to 65535');
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption('host', options.host, 'a non-empty host name or address');
  if (options.proxy !== undefined && typeof options.proxy?.shadowSamples !== 'function') {
    throw invalidOption('proxy', typeof options.proxy, 'an object with shadowSamples() (a proxy or a proxy cluster)');
  }
  const registry = options.registry ?? new Registry();
  const logger = (options.logger ?? silentLogger()).child({ component: 'proxy-admin' });
  const expected = digest(options.token);
  const router = createRouter();

  const requireToken =
    (handler: Handler): Handler =>
    (ctx) => {
      const m = BEARER.exec(ctx.req.headers.authorization ?? '');
      if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
        throw proxyError('PROXY_ERR_UNAUTHORIZED', 'send the admin token as "Authorization: Bearer <token>"');
      }
      return handler(ctx);
    };

  const admin: ProxyAdmin = {
    router,
    requireToken,
    route(method, pattern, handler) {
      router.add(method, pattern, requireToken(handler));
      return admin;
    },
    http: createHttpService({ name: 'proxy-admin', router, registry, logger, host, port }),
    start() {
      return admin.http.start();
    },
    close() {
      return admin.http.close();
    },
  };

  admin.route('GET', '/admin/shadow/samples', ({ res, query }) => {
    let samples = [...(options.proxy?.shadowSamples() ?? [])].reverse();
    const feature = query.get('feature');
    const route = query.get('route');
    const result = query.get('result');
    if (feature) samples = samples.filter((s) => s.feature === feature);
    if (route) samples = samples.filter((s) => s.route === route);
    if (result) samples = samples.filter((s) => s.result === result);
    const limit = Number(query.get('limit') ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw proxyError('PROXY_ERR_BAD_QUERY', 'query parameter limit must be an integer from 1 to 10000');
    }
    sendJson(res, 200, { samples: samples.slice(0, limit) });
  });
  admin.route('GET', '/admin/upstreams', ({ res }) => {
    sendJson(res, 200, { upstreams: options.proxy?.upstreams?.() ?? [] });
  });
  return admin;
}
