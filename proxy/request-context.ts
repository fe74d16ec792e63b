import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { sha256 } from '../lib/cutover/decide.ts';
import type { EngineTarget } from './engine.ts';
import type { ProxyErrorCode } from './errors.ts';
import type { RouteMetrics, Side } from './metrics.ts';
import type { CompiledRoute } from './route-table.ts';
import type { ShadowCapture } from './shadow-capture.ts';
import { CONNECT_FAILURES, type Pool, type Upstream } from './upstreams.ts';

/** One proxied exchange's state (Ctx), the request-level constants and helpers of createProxy's state machine. */

export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const BEARER = /^Bearer +([\x21-\x7e]{1,512}) *$/i;
/** Methods retried on another instance after a connection failure (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Methods without side effects: shadowed unless the route says otherwise. */
export const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Errors before any answer after which an idempotent request is retried elsewhere (a stale keep-alive socket resets). */
export const RETRYABLE = new Set([...CONNECT_FAILURES, 'ECONNRESET', 'EPIPE']);
/** Resends over another connection after a reused keep-alive socket reset (each stale socket is gone after one). */
export const STALE_SOCKET_RETRIES = 3;

export const CTX = Symbol('strangler.proxy.ctx');

export interface Ctx {
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
  /** The legacy answer being kept for a shadow comparison. */
  shadow?: ShadowCapture;
}

export type ProxiedRequest = IncomingMessage & { [CTX]?: Ctx };
/** An upstream answer, tagged with its exchange for the shared 'close' listener. */
export type ProxiedResponse = IncomingMessage & { [CTX]?: Ctx };

export function abandoned(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('the proxy already answered this request');
  err.code = 'PROXY_ABANDONED';
  return err;
}

export function engineTarget(u: Upstream): EngineTarget {
  const target: EngineTarget = { protocol: 'http:', host: u.hostname, hostname: u.hostname, port: u.port, path: u.basePath };
  if (u.basePath) target.pathname = u.basePath;
  return target;
}

/** The key a route's sticky bucket is computed from (undefined: the request lacks it). */
export function stickyKey(route: CompiledRoute, params: Record<string, string>, req: IncomingMessage, requestId: string): string | undefined {
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
