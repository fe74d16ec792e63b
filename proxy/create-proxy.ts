import { hasUnreadBody } from '../lib/http/unread-body.ts';
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { goesNew } from '../lib/cutover/decide.ts';
import type { Routing } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';
import { sendError } from '../lib/http/respond.ts';
import { createNodeServer } from '../lib/http/node-server.ts';
import { createRouter } from '../lib/http/router.ts';
import { silentLogger } from '../lib/logger.ts';
import type { EngineTarget, ProxyEngine } from './engine.ts';
import { createDecisionCache } from './decision-cache.ts';
import { proxyStatus, type ProxyErrorCode } from './errors.ts';
import { createProxyMetrics, RouteMetrics, type Side } from './metrics.ts';
import { answerOwnEndpoint, OWN_PATHS } from './own-endpoints.ts';
import { proxySettings, type ProxyOptions } from './proxy-options.ts';
import {
  abandoned,
  CTX,
  engineTarget,
  IDEMPOTENT,
  REQUEST_ID,
  RETRYABLE,
  SAFE,
  STALE_SOCKET_RETRIES,
  stickyKey,
  type Ctx,
  type ProxiedRequest,
  type ProxiedResponse,
} from './request-context.ts';
import { compileRouteTable, type CompiledRoute } from './route-table.ts';
import { Shadower, type ShadowSample } from './shadow.ts';
import { captureLegacyAnswer, launchShadow, startShadowCapture } from './shadow-capture.ts';
import { CONNECT_FAILURES, UpstreamSet, type Pool, type Upstream } from './upstreams.ts';

export type { ProxyOptions } from './proxy-options.ts';

export interface UpstreamStatus {
  instance: string;
  url: string;
  healthy: boolean;
}

export interface Proxy {
  start(): Promise<{ port: number; url: string }>;
  /** Stops accepting, ends open event streams (clients reconnect elsewhere), lets other requests finish; idempotent. */
  close(): Promise<void>;
  /** The latest shadow mismatches and errors, oldest first. */
  shadowSamples(): ShadowSample[];
  upstreams(): UpstreamStatus[];
  readonly registry: Registry;
  readonly server: Server;
}

/**
 * The strangler-fig proxy: forwards each request of the route table to the
 * legacy or the new target of its feature, as the feature's live cutover
 * state says (`goesNew`, sticky per key), with pools, health checks,
 * failover, timeouts, shadow comparison and per-feature metrics. Built on
 * the http-proxy API (http-proxy-3).
 *
 * Options are checked here, so a bad one fails with CONFIG_ERR_INVALID_OPTION
 * naming it and its value. The proxy's own `/healthz`, `/readyz` and
 * `/metrics` answer on the same port.
 *
 * @example
 *   const proxy = createProxy({ routes, state: cutoverReader, port: 8000 });
 *   const { url } = await proxy.start();
 *   // curl "$url/v2/droplets" -H 'Authorization: Bearer …'  → legacy or new, per the cutover state
 *   await proxy.close();
 */
export function createProxy(options: ProxyOptions): Proxy {
  const { port, host, bodyLimit, connectTimeoutMs, responseTimeoutMs, drainTimeoutMs, maxClientConnections, health, agentOptions, shadowSettings, xForwarded, makeEngine, registry } =
    proxySettings(options);
  const log = (options.logger ?? silentLogger()).child({ component: 'proxy' });
  const state = options.state;
  const identity = options.identity;
  const onExchange = options.onExchange;

  const metrics = createProxyMetrics(registry);
  const upstreams = new UpstreamSet(agentOptions, health, metrics.healthy, log);
  const routes = compileRouteTable(options.routes, upstreams, options.shadow?.compare);
  const shadower = new Shadower(
    shadowSettings,
    { comparisons: metrics.shadowComparisons, skipped: metrics.shadowSkipped },
    log,
    options.onShadowSample,
  );

  // Matching reuses lib/http/router.ts; its handler slot holds the compiled route and its metrics.
  const router = createRouter<{ route: CompiledRoute; metrics: Record<Side | 'none', RouteMetrics> }>();
  const targets = new Map<Upstream, EngineTarget>();
  for (const route of routes) {
    const m = {
      legacy: new RouteMetrics(metrics, route.feature, route.pattern, 'legacy'),
      new: new RouteMetrics(metrics, route.feature, route.pattern, 'new'),
      none: new RouteMetrics(metrics, route.feature, route.pattern, 'none'),
    };
    for (const method of route.methods) router.add(method, route.pattern, { route, metrics: m });
  }
  for (const u of upstreams.all()) targets.set(u, engineTarget(u));
  const unmatched = new RouteMetrics(metrics, 'none', 'unmatched', 'none');
  const internal = new RouteMetrics(metrics, 'proxy', 'internal', 'none');

  const engine: ProxyEngine = makeEngine({ xfwd: xForwarded, toProxy: true });
  engine.on('proxyReq', onProxyReq);
  engine.on('proxyRes', onProxyRes);
  engine.on('error', (err) => log.error({ err }, 'http-proxy error without a request'));
  engine.on('econnreset', () => undefined);

  const streams = new Set<ServerResponse>();
  let inFlight = 0;
  let closing: Promise<void> | undefined;
  let drained: (() => void) | undefined;
  let listening = false;

  const server = createNodeServer(onRequest, log);
  server.maxConnections = maxClientConnections;

  function stateOf(feature: string): Routing | undefined {
    try {
      return state.get(feature);
    } catch (err) {
      log.error({ err, feature }, 'the feature state source failed; routing to legacy');
      return undefined;
    }
  }

  /**
   * The proxy's own answer: a JSON error with a PROXY_ERR_ code. Gateway
   * errors (502/503/504) say which side failed and how (never the upstream's
   * address); an internal error says only where the log is.
   */
  function fail(ctx: Ctx, res: ServerResponse, code: ProxyErrorCode, message: string, headers: Record<string, string> = {}): void {
    ctx.finished = true;
    clearTimers(ctx);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const status = proxyStatus(code);
    if (status >= 500) log.warn({ requestId: ctx.requestId, code, route: ctx.route?.pattern, why: message }, 'proxy answered with an error');
    // Refused before its body was read: close, rather than drain the body for as long as the client sends.
    if (hasUnreadBody(res.req)) {
      headers = { ...headers, connection: 'close' };
      res.once('finish', () => (res.req.socket as Socket | null)?.destroySoon());
    }
    sendError(res, status, code, message, { ...ownHeaders(ctx), ...headers });
  }

  /** Headers on every answer: the request id, and the worker that answered (in a cluster). */
  function ownHeaders(ctx: Ctx): Record<string, string> {
    return identity === undefined ? { 'x-request-id': ctx.requestId } : { 'x-request-id': ctx.requestId, 'x-proxy-worker': identity };
  }

  function clearTimers(ctx: Ctx): void {
    if (ctx.connectTimer) clearTimeout(ctx.connectTimer);
    if (ctx.responseTimer) clearTimeout(ctx.responseTimer);
    ctx.connectTimer = undefined;
    ctx.responseTimer = undefined;
  }

  const decide = createDecisionCache();


  function onRequest(req: ProxiedRequest, res: ServerResponse): void {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    // Every field from the start: one object shape for every request, so V8 keeps the hot functions monomorphic.
    const ctx: Ctx = {
      req,
      res,
      requestId,
      started: performance.now(),
      method: req.method ?? 'GET',
      metrics: unmatched,
      route: undefined,
      side: undefined,
      pool: undefined,
      body: undefined,
      instance: undefined,
      tried: undefined,
      lastError: undefined,
      proxyReq: undefined,
      connectTimer: undefined,
      responseTimer: undefined,
      attempts: 0,
      staleRetries: undefined,
      upstreamAnswered: false,
      finished: false,
      stream: false,
      shadow: undefined,
    };
    req[CTX] = ctx;
    inFlight++;
    // on, not once: 'close' comes once per response, and once() wraps the listener in a new closure per request.
    res.on('close', onClientClose);
    // The answer's own headers are added where it is written (fail, answerOwnEndpoint, onProxyRes), not
    // with setHeader here: headers set ahead turn every writeHead into a header-by-header copy.
    req.headers['x-request-id'] = requestId;
    try {
      route(req, res, ctx);
    } catch (err) {
      log.error({ err, requestId }, 'request failed');
      fail(ctx, res, 'PROXY_ERR_INTERNAL', `internal error; see the proxy log for request ${requestId}`);
    }
  }

  function route(req: ProxiedRequest, res: ServerResponse, ctx: Ctx): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    if (closing) {
      fail(ctx, res, 'PROXY_ERR_SHUTTING_DOWN', 'the proxy is shutting down; retry', { connection: 'close' });
      return;
    }
    if (ctx.method === 'GET' && OWN_PATHS.has(pathname)) {
      ctx.metrics = internal;
      answerOwnEndpoint(pathname, res, { ready: listening && !closing, upstreams, healthPath: health.path, registry, headers: ownHeaders(ctx), log });
      return;
    }
    let match;
    try {
      match = router.match(ctx.method, pathname);
    } catch {
      fail(ctx, res, 'PROXY_ERR_BAD_PATH', `the path ${JSON.stringify(pathname.slice(0, 200))} has a segment that is not valid percent-encoding`);
      return;
    }
    if (!match) {
      fail(ctx, res, 'PROXY_ERR_NO_ROUTE', `no route for ${ctx.method} ${pathname.slice(0, 200)}`);
      return;
    }
    if ('allowed' in match) {
      const allow = [...new Set(match.allowed)].join(', ');
      fail(ctx, res, 'PROXY_ERR_METHOD_NOT_ALLOWED', `${ctx.method} is not routed here; use ${allow}`, { allow });
      return;
    }
    const entry = match.handler;
    const r = entry.route;
    ctx.route = r;
    ctx.metrics = entry.metrics.none;

    let region: string | undefined;
    if (r.region) {
      const from = r.region;
      const v = 'param' in from ? match.params[from.param] : req.headers[from.header];
      region = typeof v === 'string' && v !== '' ? v : undefined;
    }
    const routing = stateOf(r.feature);
    let side: Side = 'legacy';
    if (routing && routing.mode !== 'legacy') {
      if (routing.mode === 'canary') {
        const key = stickyKey(r, match.params, req, ctx.requestId);
        if (key !== undefined && decide(r.feature, routing, key, region, r.stickyBy === undefined)) side = 'new';
      } else if (goesNew(r.feature, routing, { key: '', region })) {
        side = 'new';
      }
    }
    const pool = resolvePool(r, side, region, ctx, res);
    if (!pool) return;
    ctx.side = side;
    ctx.pool = pool;
    ctx.metrics = entry.metrics[side];

    if (routing?.mode === 'shadow' && (SAFE.has(ctx.method) || r.shadowWrites)) {
      const target = r.new;
      const shadowPool = target.kind === 'pool' ? target.pool : region === undefined ? undefined : target.pools.get(region);
      ctx.shadow = startShadowCapture(shadowPool);
    }

    // Expect: 100-continue is answered by this server; the upstream gets the whole body at once.
    // (Checked first: deleting a property turns the headers object slow for everything after.)
    if (req.headers.expect !== undefined) delete req.headers.expect;
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    if (te === undefined && (cl === undefined || cl === '0')) {
      forward(req, res, ctx);
      return;
    }
    const declared = Number(cl);
    if (cl !== undefined && (!Number.isFinite(declared) || declared > bodyLimit)) {
      tooLarge(req, res, ctx, `request body is ${cl} bytes; the limit is ${bodyLimit}`);
      return;
    }
    readBody(req, res, ctx);
  }

  function resolvePool(r: CompiledRoute, side: Side, region: string | undefined, ctx: Ctx, res: ServerResponse): Pool | undefined {
    const target = r[side];
    if (target.kind === 'pool') return target.pool;
    if (region === undefined) {
      const from = r.region!;
      fail(ctx, res, 'PROXY_ERR_NO_REGION', 'param' in from ? `the path names no region` : `send the region in the ${from.header} header`);
      return undefined;
    }
    const pool = target.pools.get(region);
    if (!pool) {
      fail(ctx, res, 'PROXY_ERR_UNKNOWN_REGION', `unknown region ${JSON.stringify(region.slice(0, 64))}; this route serves ${[...target.pools.keys()].join(', ')}`);
    }
    return pool;
  }

  function tooLarge(req: IncomingMessage, res: ServerResponse, ctx: Ctx, message: string): void {
    fail(ctx, res, 'PROXY_ERR_BODY_TOO_LARGE', message, { connection: 'close' });
    // The rest of the body is not read: the connection cannot carry another request.
    res.once('finish', () => req.socket.destroySoon());
  }

  function readBody(req: ProxiedRequest, res: ServerResponse, ctx: Ctx): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > bodyLimit) {
        done = true;
        req.off('data', onData);
        req.pause();
        tooLarge(req, res, ctx, `request body exceeds the limit of ${bodyLimit} bytes`);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (done) return;
      done = true;
      ctx.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      forward(req, res, ctx);
    });
    req.once('error', () => {
      done = true;
    });
  }

  function forward(req: ProxiedRequest, res: ServerResponse, ctx: Ctx): void {
    if (res.destroyed) return;
    let instance = ctx.pool!.pick(ctx.tried);
    if (!instance && (ctx.attempts === 0 || ctx.panic)) {
      // Every instance fails its health checks: try them anyway, one after the other (Envoy's panic
      // threshold at 100%). A saturated database makes every Cloud "unready" at the same moment;
      // refusing all requests then would turn a slow system into a down one.
      instance = ctx.pool!.pickAny(ctx.tried);
      if (instance && !ctx.panic) {
        ctx.panic = true;
        metrics.panicRouted.inc({ feature: ctx.route!.feature, target: ctx.side! });
      }
    }
    if (!instance) {
      if (ctx.panic) fail(ctx, res, 'PROXY_ERR_NO_HEALTHY_UPSTREAM', `every ${ctx.side} instance for ${ctx.route!.feature} fails its health checks, and trying them anyway failed too (${ctx.lastError?.message ?? 'no instance'})`);
      else if (ctx.lastError) fail(ctx, res, ctx.lastError.code, ctx.lastError.message);
      else fail(ctx, res, 'PROXY_ERR_NO_HEALTHY_UPSTREAM', `no healthy ${ctx.side} instance for ${ctx.route!.feature}`);
      return;
    }
    ctx.instance = instance;
    ctx.proxyReq = undefined;
    ctx.attempts++;
    const timeout = ctx.route!.responseTimeoutMs ?? responseTimeoutMs;
    if (timeout > 0) ctx.responseTimer = setTimeout(onResponseTimeout, timeout, req, res, ctx, timeout);
    const target = targets.get(instance)!;
    if (ctx.body === undefined) engine.web(req, res, { target, agent: instance.agent }, onProxyError);
    else engine.web(req, res, { target, agent: instance.agent, body: ctx.body }, onProxyError);
  }

  function onResponseTimeout(req: ProxiedRequest, res: ServerResponse, ctx: Ctx, ms: number): void {
    ctx.responseTimer = undefined;
    const err: NodeJS.ErrnoException = new Error(`no response headers within ${ms} ms`);
    err.code = 'PROXY_RESPONSE_TIMEOUT';
    if (ctx.proxyReq) ctx.proxyReq.destroy(err);
    else onProxyError(err, req, res);
  }

  function onProxyReq(proxyReq: ClientRequest, req: ProxiedRequest): void {
    const ctx = req[CTX];
    if (!ctx) return;
    if (ctx.finished) {
      proxyReq.destroy(abandoned());
      return;
    }
    ctx.proxyReq = proxyReq;
    // A reused keep-alive socket (the common case) is connected already: nothing to watch.
    if (proxyReq.socket) {
      if (proxyReq.socket.connecting) watchConnect(proxyReq, proxyReq.socket, ctx);
    } else {
      proxyReq.once('socket', (socket: Socket) => {
        if (socket.connecting) watchConnect(proxyReq, socket, ctx);
      });
    }
  }

  function watchConnect(proxyReq: ClientRequest, socket: Socket, ctx: Ctx): void {
    if (ctx.proxyReq !== proxyReq) return;
    const timer = setTimeout(() => {
      const err: NodeJS.ErrnoException = new Error(`no connection within ${connectTimeoutMs} ms`);
      err.code = 'PROXY_CONNECT_TIMEOUT';
      proxyReq.destroy(err);
    }, connectTimeoutMs);
    ctx.connectTimer = timer;
    const clear = () => clearTimeout(timer);
    socket.once('connect', clear);
    socket.once('close', clear);
  }

  // Shared listeners (`this` is the emitter, the exchange hangs off it): closures per request cost.
  function onClientClose(this: ServerResponse): void {
    const req = this.req as ProxiedRequest;
    const ctx = req[CTX];
    if (ctx) onDone(req, this, ctx);
  }

  // An upstream that dies mid-answer: cut the client off too (pipe() would leave it waiting forever).
  function onUpstreamClose(this: ProxiedResponse): void {
    const ctx = this[CTX]!;
    const res = ctx.res;
    if (this.complete || res.writableEnded || res.destroyed) return;
    metrics.upstreamErrors.inc({ feature: ctx.route!.feature, target: ctx.side!, code: 'PROXY_ERR_UPSTREAM_UNAVAILABLE' });
    log.warn({ requestId: ctx.requestId, instance: ctx.instance?.label }, 'upstream broke off its answer');
    res.destroy();
  }

  function onProxyRes(proxyRes: IncomingMessage, req: ProxiedRequest, res: ServerResponse): void {
    const ctx = req[CTX];
    if (!ctx || ctx.finished || ctx.upstreamAnswered) return;
    ctx.upstreamAnswered = true;
    clearTimers(ctx);
    // Copied to the answer with the upstream's own headers (the request id wins over an upstream's).
    const headers = proxyRes.headers;
    headers['x-request-id'] = ctx.requestId;
    if (identity !== undefined) headers['x-proxy-worker'] = identity;
    (proxyRes as ProxiedResponse)[CTX] = ctx;
    proxyRes.on('close', onUpstreamClose);
    const type = proxyRes.headers['content-type'];
    if (typeof type === 'string' && type.startsWith('text/event-stream')) {
      ctx.stream = true;
      streams.add(res);
      metrics.openStreams.inc();
      // Headers reach the client now, not with the first event; each event is written as it arrives.
      queueMicrotask(() => {
        if (!res.writableEnded && !res.destroyed) res.flushHeaders();
      });
      if (ctx.shadow) {
        shadower.skip(ctx.route!.feature, ctx.route!.pattern, 'stream');
        ctx.shadow = undefined;
      }
      return;
    }
    if (ctx.shadow) captureLegacyAnswer(ctx.shadow, proxyRes, shadowSettings.maxCompareBytes);
  }

  function onProxyError(err: NodeJS.ErrnoException, req: IncomingMessage, res: unknown): void {
    const ctx = (req as ProxiedRequest)[CTX];
    const response = res as ServerResponse;
    const code = err.code ?? '';
    if (!ctx || !ctx.route || ctx.finished || code === 'PROXY_ABANDONED') return;
    clearTimers(ctx);
    // A keep-alive socket the upstream closed while idle resets when reused, before the request
    // reached the upstream's application (Node's documented race: `reusedSocket` and ECONNRESET;
    // an event loop that lags behind the Keep-Alive hint hits it under load). The body is buffered,
    // so the same request goes again over another connection, whatever its method: it is not a
    // failure of the upstream, and an agent's ack must not turn into a 502.
    if (code === 'ECONNRESET' && ctx.proxyReq?.reusedSocket && !ctx.upstreamAnswered && (ctx.staleRetries ?? 0) < STALE_SOCKET_RETRIES && !req.socket.destroyed) {
      ctx.staleRetries = (ctx.staleRetries ?? 0) + 1;
      log.debug({ requestId: ctx.requestId, instance: ctx.instance?.label }, 'stale keep-alive socket; sending again');
      forward(req as ProxiedRequest, response, ctx);
      return;
    }
    const timeout = code === 'PROXY_CONNECT_TIMEOUT' || code === 'PROXY_RESPONSE_TIMEOUT';
    const proxyCode: ProxyErrorCode = timeout ? 'PROXY_ERR_UPSTREAM_TIMEOUT' : 'PROXY_ERR_UPSTREAM_UNAVAILABLE';
    metrics.upstreamErrors.inc({ feature: ctx.route.feature, target: ctx.side!, code: proxyCode });
    const instance = ctx.instance!;
    if (CONNECT_FAILURES.has(code)) instance.markDown(code, health.unhealthyThreshold);
    log.warn({ requestId: ctx.requestId, instance: instance.label, code, err: err.message }, 'upstream attempt failed');
    if (ctx.upstreamAnswered || response.headersSent) {
      // The answer had begun: the client sees the connection cut, as it would have seen the upstream's.
      ctx.finished = true;
      response.destroy();
      return;
    }
    const message = timeout
      ? `the ${ctx.side} upstream ${code === 'PROXY_CONNECT_TIMEOUT' ? `did not accept a connection within ${connectTimeoutMs} ms` : `did not answer within ${ctx.route.responseTimeoutMs ?? responseTimeoutMs} ms`}`
      : `the ${ctx.side} upstream is unavailable (${code || err.message})`;
    ctx.lastError = { code: proxyCode, message };
    if (RETRYABLE.has(code) && IDEMPOTENT.has(ctx.method) && !req.socket.destroyed) {
      (ctx.tried ??= new Set()).add(instance);
      forward(req, response, ctx);
      return;
    }
    if (ctx.panic) fail(ctx, response, 'PROXY_ERR_NO_HEALTHY_UPSTREAM', `every ${ctx.side} instance for ${ctx.route.feature} fails its health checks, and trying one anyway failed too (${message})`);
    else fail(ctx, response, proxyCode, message);
  }

  function onDone(req: ProxiedRequest, res: ServerResponse, ctx: Ctx): void {
    inFlight--;
    clearTimers(ctx);
    ctx.finished = true;
    // The client left before the answer ended (an agent dropping its stream): drop the upstream
    // request too, or every reconnecting agent would leave an upstream socket behind. (http-proxy-3
    // does this itself; the original http-proxy only reacts to 'aborted', which Node no longer
    // emits once a request's body is complete.)
    if (!res.writableFinished && ctx.proxyReq && !ctx.proxyReq.destroyed) ctx.proxyReq.destroy(abandoned());
    req[CTX] = undefined;
    // 499: the client went away before any answer (nginx's convention).
    ctx.metrics.count(res.headersSent ? res.statusCode : 499);
    if (onExchange !== undefined && ctx.metrics !== internal) {
      try {
        onExchange({ method: ctx.method, url: req.url ?? '/', headers: req.headers, body: ctx.body, status: res.headersSent ? res.statusCode : 499, startedAt: ctx.started, durationMs: performance.now() - ctx.started, feature: ctx.route?.feature, route: ctx.route?.pattern, target: ctx.side });
      } catch (err) {
        log.warn({ err }, 'onExchange hook failed');
      }
    }
    if (ctx.stream) {
      streams.delete(res);
      metrics.openStreams.dec();
    } else {
      ctx.metrics.duration.observe((performance.now() - ctx.started) / 1000);
    }
    if (ctx.shadow && ctx.route) {
      const { feature, pattern, compare } = ctx.route;
      launchShadow(shadower, ctx.shadow, {
        feature,
        route: pattern,
        method: ctx.method,
        url: req.url ?? '/',
        requestId: ctx.requestId,
        headers: req.headers,
        body: ctx.body,
        rules: compare,
        delivered: res.writableFinished,
        closing: closing !== undefined,
      });
    }
    if (inFlight === 0) drained?.();
  }

  return {
    registry,
    server,
    async start() {
      if (closing) throw invalidOption('start', 'after close', 'called on a proxy that was not closed; create a new one');
      await upstreams.start();
      const down = upstreams.all().filter((u) => !u.healthy);
      if (down.length) log.warn({ instances: down.map((u) => u.label) }, 'some upstream instances fail their health checks at start');
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => {
            server.removeListener('error', reject);
            resolve();
          });
        });
      } catch (err) {
        upstreams.stop();
        throw err;
      }
      listening = true;
      const { port: actual } = server.address() as AddressInfo;
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
      log.info({ url, routes: routes.length, instances: upstreams.all().length }, 'proxy listening');
      return { port: actual, url };
    },
    close() {
      closing ??= (async () => {
        if (server.listening) {
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeIdleConnections();
          // Streams never end by themselves; their clients reconnect (to another worker or replica).
          for (const res of streams) res.destroy();
          if (inFlight > 0) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, drainTimeoutMs);
              drained = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          server.closeAllConnections();
          await closed;
        }
        shadower.abort();
        upstreams.stop();
        listening = false;
        log.info('proxy closed');
      })();
      return closing;
    },
    shadowSamples() {
      return shadower.ring.list();
    },
    upstreams() {
      return upstreams.all().map((u) => ({ instance: u.label, url: u.url, healthy: u.healthy }));
    },
  };
}
