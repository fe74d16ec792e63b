import { hasUnreadBody } from '../lib/http/unread-body.ts';
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { goesNew, sha256 } from '../lib/cutover/decide.ts';
import type { FeatureStateSource, Routing } from '../lib/cutover/types.ts';
import { invalidOption } from '../lib/errors.ts';
import { sendError, sendJson } from '../lib/http/respond.ts';
import { createNodeServer } from '../lib/http/node-server.ts';
import { createRouter } from '../lib/http/router.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import type { CompareRules } from './compare.ts';
import { defaultEngine, type EngineFactory, type EngineTarget, type ProxyEngine } from './engine.ts';
import { proxyStatus, type ProxyErrorCode } from './errors.ts';
import { createProxyMetrics, RouteMetrics, type Side } from './metrics.ts';
import { compileRouteTable, type CompiledRoute, type RouteTable } from './route-table.ts';
import { Shadower, type ShadowSample, type ShadowSettings } from './shadow.ts';
import type { ProxyExchange } from './capture/recorder.ts';
import { CONNECT_FAILURES, UpstreamSet, type AgentOptions, type HealthCheckOptions, type Pool, type Upstream } from './upstreams.ts';

export interface ProxyOptions {
  /** The route table (see RouteTable in route-table.ts for the format and an example). */
  routes: RouteTable;
  /** Live feature states (the cutover's MySQL reader, or a fixed map in tests). A feature with no state goes to legacy. */
  state: FeatureStateSource;
  /** Where the proxy_* metrics go; a fresh Registry by default. */
  registry?: Registry;
  logger?: Logger;
  port?: number;
  host?: string;
  /** Largest request body accepted, in bytes (1 MiB by default); bodies are read before forwarding. */
  bodyLimit?: number;
  /** Time allowed to open a connection to an upstream instance (2 s by default). */
  connectTimeoutMs?: number;
  /** Time allowed until an upstream's response headers (30 s by default; 0 = none). Routes may override; event streams never time out once they answered. */
  responseTimeoutMs?: number;
  /** How long close() waits for in-flight requests before cutting them (10 s by default). */
  drainTimeoutMs?: number;
  healthCheck?: Partial<HealthCheckOptions>;
  /** Keep-alive agent settings per upstream instance. */
  agent?: Partial<AgentOptions>;
  shadow?: Partial<ShadowSettings> & {
    /** Comparison rules for every route (features and routes add their own). */
    compare?: CompareRules;
  };
  /** Called with every shadow sample as it is recorded (a cluster worker forwards them to its primary). */
  onShadowSample?: (sample: ShadowSample) => void;
  /** Sent as `x-proxy-worker` on every answer (a cluster sets it to "<worker id>/<pid>"). */
  identity?: string;
  /**
   * Client connections this process accepts at once (9,000 by default). Each
   * relayed stream holds two sockets (client and upstream), so 9,000 keeps a
   * process under the 20,000-socket budget; run more workers for more.
   */
  maxClientConnections?: number;
  /**
   * Adds X-Forwarded-For/-Port/-Proto/-Host to upstream requests. Off by
   * default: this system's upstreams do not read them, and they cost about
   * 10% of a bare pass-through's CPU per request (bench/proxy.ts).
   */
  xForwarded?: boolean;
  /**
   * What forwards each attempt: the pipe engine by default (see engine.ts for
   * why); `httpProxy3Engine`, or `httpProxyApi(...)` over another http-proxy
   * library, plug in instead (bench/proxy.ts measures all three).
   */
  engine?: EngineFactory;
  /** Told about every finished request except /metrics, /healthz, /readyz: the traffic recorder (proxy/capture/recorder.ts). Unset: no cost. */
  onExchange?: (exchange: ProxyExchange) => void;
}

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

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;
/** Methods retried on another instance after a connection failure (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Methods without side effects: shadowed unless the route says otherwise. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Errors before any answer after which an idempotent request is retried elsewhere (a stale keep-alive socket resets). */
const RETRYABLE = new Set([...CONNECT_FAILURES, 'ECONNRESET', 'EPIPE']);
/** Resends over another connection after a reused keep-alive socket reset (each stale socket is gone after one). */
const STALE_SOCKET_RETRIES = 3;

const MAX_BODY_LIMIT = 64 * 1024 * 1024;
/** Remembered routing answers per feature (a hypervisor fleet or an active customer base fits). */
const DECISION_CACHE_SIZE = 100_000;

const CTX = Symbol('strangler.proxy.ctx');

interface Ctx {
  readonly req: ProxiedRequest;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly started: number;
  readonly method: string;
  metrics: RouteMetrics;
  route?: CompiledRoute;
  side?: Side;
  pool?: Pool;
  body?: Buffer;
  instance?: Upstream;
  tried?: Set<Upstream>;
  /** Every instance was failing its health checks when the request came: routed to them anyway. */
  panic?: boolean;
  lastError?: { code: ProxyErrorCode; message: string };
  proxyReq?: ClientRequest;
  connectTimer?: NodeJS.Timeout;
  responseTimer?: NodeJS.Timeout;
  /** Attempts made (failover adds one per instance tried). */
  attempts: number;
  /** Resends after a reused keep-alive socket reset before the request was sent. */
  staleRetries?: number;
  /** The upstream's answer has begun (its headers arrived). */
  upstreamAnswered: boolean;
  /** The proxy answered by itself (an error), or the exchange is over: later upstream events are ignored. */
  finished: boolean;
  stream: boolean;
  shadow?: { pool: Pool | undefined; chunks: Buffer[]; size: number; complete: boolean; status: number; contentType: string; tooLarge: boolean };
}

type ProxiedRequest = IncomingMessage & { [CTX]?: Ctx };
/** An upstream answer, tagged with its exchange for the shared 'close' listener. */
type ProxiedResponse = IncomingMessage & { [CTX]?: Ctx };

function positiveInt(name: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw invalidOption(name, value, `an integer from ${min} to ${max}`);
  return v as number;
}

function checkHealthOptions(h: Partial<HealthCheckOptions> | undefined): HealthCheckOptions {
  if (h !== undefined && (typeof h !== 'object' || h === null)) throw invalidOption('healthCheck', h, 'an object { path?, intervalMs?, timeoutMs?, unhealthyThreshold?, healthyThreshold? }');
  const path = h?.path ?? '/healthz';
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidOption('healthCheck.path', h?.path, 'a path starting with /');
  const intervalMs = positiveInt('healthCheck.intervalMs', h?.intervalMs, 2000, 50, 600_000);
  return {
    path,
    intervalMs,
    timeoutMs: positiveInt('healthCheck.timeoutMs', h?.timeoutMs, Math.min(1000, intervalMs), 10, 600_000),
    unhealthyThreshold: positiveInt('healthCheck.unhealthyThreshold', h?.unhealthyThreshold, 2, 1, 100),
    healthyThreshold: positiveInt('healthCheck.healthyThreshold', h?.healthyThreshold, 1, 1, 100),
  };
}

function checkAgentOptions(a: Partial<AgentOptions> | undefined): AgentOptions {
  if (a !== undefined && (typeof a !== 'object' || a === null)) throw invalidOption('agent', a, 'an object { maxSockets?, maxFreeSockets?, keepAliveMsecs? }');
  const maxSockets = a?.maxSockets ?? Infinity;
  if (maxSockets !== Infinity && (!Number.isInteger(maxSockets) || maxSockets < 1)) throw invalidOption('agent.maxSockets', a?.maxSockets, 'a positive integer or Infinity');
  return {
    maxSockets,
    maxFreeSockets: positiveInt('agent.maxFreeSockets', a?.maxFreeSockets, 256, 1, 100_000),
    keepAliveMsecs: positiveInt('agent.keepAliveMsecs', a?.keepAliveMsecs, 1000, 1, 600_000),
  };
}

function checkShadowOptions(s: ProxyOptions['shadow']): ShadowSettings {
  if (s !== undefined && (typeof s !== 'object' || s === null)) throw invalidOption('shadow', s, 'an object { samples?, sampleBodyBytes?, maxCompareBytes?, timeoutMs?, maxInFlight?, compare? }');
  return {
    samples: positiveInt('shadow.samples', s?.samples, 50, 0, 10_000),
    sampleBodyBytes: positiveInt('shadow.sampleBodyBytes', s?.sampleBodyBytes, 2048, 0, 1024 * 1024),
    maxCompareBytes: positiveInt('shadow.maxCompareBytes', s?.maxCompareBytes, 1024 * 1024, 1, 64 * 1024 * 1024),
    timeoutMs: positiveInt('shadow.timeoutMs', s?.timeoutMs, 5000, 1, 600_000),
    maxInFlight: positiveInt('shadow.maxInFlight', s?.maxInFlight, 100, 1, 100_000),
  };
}

function abandoned(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('the proxy already answered this request');
  err.code = 'PROXY_ABANDONED';
  return err;
}

function engineTarget(u: Upstream): EngineTarget {
  const target: EngineTarget = { protocol: 'http:', host: u.hostname, hostname: u.hostname, port: u.port, path: u.basePath };
  if (u.basePath) target.pathname = u.basePath;
  return target;
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
  if (typeof options !== 'object' || options === null) throw invalidOption('options', options, 'an object');
  if (typeof options.state?.get !== 'function') throw invalidOption('state', typeof options.state, 'a FeatureStateSource ({ get(feature) })');
  const port = positiveInt('port', options.port, 0, 0, 65535);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption('host', options.host, 'a non-empty host name or address');
  const bodyLimit = positiveInt('bodyLimit', options.bodyLimit, 1024 * 1024, 0, MAX_BODY_LIMIT);
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 2000, 1, 600_000);
  const responseTimeoutMs = positiveInt('responseTimeoutMs', options.responseTimeoutMs, 30_000, 0, 3_600_000);
  const drainTimeoutMs = positiveInt('drainTimeoutMs', options.drainTimeoutMs, 10_000, 0, 600_000);
  const maxClientConnections = positiveInt('maxClientConnections', options.maxClientConnections, 9000, 1, 1_000_000);
  const health = checkHealthOptions(options.healthCheck);
  const agentOptions = checkAgentOptions(options.agent);
  const shadowSettings = checkShadowOptions(options.shadow);
  if (options.identity !== undefined && (typeof options.identity !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(options.identity))) {
    throw invalidOption('identity', options.identity, 'a short printable string (sent as x-proxy-worker)');
  }
  if (options.onShadowSample !== undefined && typeof options.onShadowSample !== 'function') throw invalidOption('onShadowSample', typeof options.onShadowSample, 'a function');
  const xForwarded = options.xForwarded ?? false;
  if (typeof xForwarded !== 'boolean') throw invalidOption('xForwarded', options.xForwarded, 'true or false');
  const makeEngine = options.engine ?? defaultEngine;
  if (typeof makeEngine !== 'function') throw invalidOption('engine', typeof options.engine, 'a function returning an http-proxy server');
  const registry = options.registry ?? new Registry();
  if (typeof registry?.metrics !== 'function' || typeof registry.registerMetric !== 'function') {
    throw invalidOption('registry', typeof options.registry, 'a prom-client Registry');
  }
  const log = (options.logger ?? silentLogger()).child({ component: 'proxy' });
  const state = options.state;
  const identity = options.identity;
  const onExchange = options.onExchange;
  if (onExchange !== undefined && typeof onExchange !== 'function') throw invalidOption('onExchange', typeof onExchange, 'a function');

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

  /**
   * goesNew, remembered per feature state: a key's answer cannot change until
   * the state does (its sticky bucket is a SHA-256, ~6 µs, on every request
   * otherwise). Per-request keys (routes without stickyBy) are not remembered.
   */
  const decisions = new Map<string, { state: Routing; version: unknown; mode: string; percent: number; regions: string | null; answers: Map<string, boolean> }>();
  function decide(feature: string, routing: Routing, key: string, region: string | undefined, oneOff: boolean): boolean {
    if (oneOff) return goesNew(feature, routing, { key, region });
    const version = (routing as { version?: unknown }).version;
    let memo = decisions.get(feature);
    const same =
      memo !== undefined &&
      (version === undefined ? memo.state === routing : memo.version === version) &&
      memo.mode === routing.mode &&
      memo.percent === routing.percent &&
      memo.regions === (routing.regions?.join(',') ?? null);
    if (!same) {
      memo = { state: routing, version, mode: routing.mode, percent: routing.percent, regions: routing.regions?.join(',') ?? null, answers: new Map() };
      decisions.set(feature, memo);
    }
    memo = memo!;
    const k = region === undefined ? key : `${region}\u0000${key}`;
    let answer = memo.answers.get(k);
    if (answer === undefined) {
      answer = goesNew(feature, routing, { key, region });
      if (memo.answers.size >= DECISION_CACHE_SIZE) memo.answers.clear();
      memo.answers.set(k, answer);
    }
    return answer;
  }

  function stickyKey(route: CompiledRoute, params: Record<string, string>, req: IncomingMessage, requestId: string): string | undefined {
    const by = route.stickyBy;
    // No sticky source: each request is bucketed on its own (a stateless route needs no stickiness).
    if (by === undefined) return requestId;
    if (by === 'bearer') {
      const m = BEARER.exec(req.headers.authorization ?? '');
      return m ? sha256(m[1]!).toString('hex') : undefined;
    }
    if ('param' in by) return params[by.param];
    const v = req.headers[by.header];
    return typeof v === 'string' && v !== '' ? v : undefined;
  }

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
    res.once('close', onClientClose);
    // The answer's own headers are added where it is written (fail, answerInternal, onProxyRes), not
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
    if (ctx.method === 'GET' && (pathname === '/healthz' || pathname === '/readyz' || pathname === '/metrics')) {
      ctx.metrics = internal;
      answerInternal(pathname, res, ctx);
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
      ctx.shadow = { pool: shadowPool, chunks: [], size: 0, complete: false, status: 0, contentType: '', tooLarge: false };
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
    proxyRes.once('close', onUpstreamClose);
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
    const shadow = ctx.shadow;
    if (shadow) {
      shadow.status = proxyRes.statusCode ?? 0;
      shadow.contentType = String(proxyRes.headers['content-type'] ?? '');
      proxyRes.on('data', (c: Buffer) => {
        shadow.size += c.length;
        if (shadow.size > shadowSettings.maxCompareBytes) shadow.tooLarge = true;
        else shadow.chunks.push(c);
      });
      proxyRes.once('end', () => {
        shadow.complete = true;
      });
    }
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
    const shadow = ctx.shadow;
    if (shadow && ctx.route) {
      const { feature, pattern } = ctx.route;
      if (!shadow.complete || !res.writableFinished || shadow.status === 0) shadower.skip(feature, pattern, 'legacy_failed');
      else if (shadow.tooLarge) shadower.skip(feature, pattern, 'body_too_large');
      else if (closing) shadower.skip(feature, pattern, 'closing');
      else if (shadower.admit(feature, pattern)) {
        shadower.run({
          feature,
          route: pattern,
          method: ctx.method,
          url: req.url ?? '/',
          requestId: ctx.requestId,
          headers: req.headers,
          body: ctx.body,
          legacy: { status: shadow.status, contentType: shadow.contentType, body: Buffer.concat(shadow.chunks) },
          rules: ctx.route.compare,
          instance: shadow.pool?.pick(),
        });
      }
    }
    if (inFlight === 0) drained?.();
  }

  function answerInternal(pathname: string, res: ServerResponse, ctx: Ctx): void {
    if (pathname === '/healthz') sendJson(res, 200, { status: 'ok', service: 'proxy' }, ownHeaders(ctx));
    else if (pathname === '/readyz') {
      // The proxy is ready whatever its upstreams do (panic routing still tries them); the instances failing their checks are named for operators.
      const unready = upstreams.all().flatMap((u) => (u.healthy ? [] : u.pools().map((p) => ({ feature: p.feature, target: p.target, instance: u.url, health_path: u.healthPath ?? health.path }))));
      sendJson(res, listening && !closing ? 200 : 503, { status: listening && !closing ? 'ready' : 'not ready', service: 'proxy', unready_upstreams: unready }, ownHeaders(ctx));
    }
    else {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': registry.contentType, ...ownHeaders(ctx) });
          res.end(body);
        },
        (err: Error) => {
          log.error({ err }, 'metrics collection failed');
          sendError(res, 500, 'PROXY_ERR_INTERNAL', 'metrics collection failed; see the proxy log', ownHeaders(ctx));
        },
      );
    }
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
