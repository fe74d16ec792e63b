import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
// http-proxy-3, not the original http-proxy. Both were measured in the same
// runs of bench/proxy.ts (`npm run bench:proxy`: same upstream, 50
// connections, 3 alternating rounds of 10 s, this 2-core machine shared with
// other work at load average 4-9). The original is FASTER here: saturated
// throughput vs a bare pass-through 0.99 vs 0.75 in the quietest run (4,411
// and 3,305 vs 4,436 req/s), 0.79 vs 0.58, 0.76 vs 0.64 and 0.68 vs 0.54 in
// the others, and ~30 µs less CPU per request (134-165 vs 181-199 µs at
// 2,500 req/s; bare 93-101 µs).
// It is kept anyway, because on the path this proxy exists for it is the
// correct one and the original is not: with the original alone, 20 agents
// that dropped their SSE streams left all 20 upstream streams open (it only
// aborts on req 'aborted', which Node no longer emits once a GET is
// complete), which at 15,000 reconnecting agents blows the socket budget;
// http-proxy-3 closes them (it listens to res 'close'). The original is also
// unmaintained since 2020 and built on APIs Node deprecates (util._extend,
// a runtime warning from Node 22; url.parse; req 'aborted'; req.abort()),
// while http-proxy-3 is a maintained rewrite of the same API, with types.
// create-proxy.ts now also tears the upstream down on client close itself,
// so the original is a safe one-line swap (the `engine` option, as
// bench/proxy.ts does) where raw req/s matters more than maintenance.
// http-proxy-3 2.x needs Node 22; this repo targets Node 20, hence 1.x.
import { createProxyServer } from 'http-proxy-3';

/**
 * Where one attempt goes: a plain object both libraries read. A base path is
 * `pathname` for http-proxy-3 and `path` for the original; without one,
 * `pathname` is left out, which spares http-proxy-3 a URL parse per request.
 */
export interface EngineTarget {
  protocol: 'http:';
  host: string;
  hostname: string;
  port: number;
  pathname?: string;
  path: string;
}

export interface EngineWebOptions {
  target: EngineTarget;
  agent: Agent;
  /** The request body, already read (so a failed attempt can be retried); absent for bodiless requests. */
  buffer?: Readable;
}

export type EngineErrorCallback = (err: NodeJS.ErrnoException, req: IncomingMessage, res: ServerResponse | unknown) => void;

/**
 * The part of the http-proxy API the proxy uses; http-proxy and http-proxy-3
 * both provide it. `proxyReq` fires once per attempt with the outgoing
 * request (http-proxy emits it at once, http-proxy-3 once a socket is
 * assigned); `proxyRes` before the answer's headers are copied.
 */
export interface ProxyEngine {
  web(req: IncomingMessage, res: ServerResponse, options: EngineWebOptions, callback: EngineErrorCallback): void;
  on(event: 'proxyReq', listener: (proxyReq: ClientRequest, req: IncomingMessage, res: ServerResponse) => void): unknown;
  on(event: 'proxyRes', listener: (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void): unknown;
  on(event: 'error' | 'econnreset', listener: (err: Error) => void): unknown;
}

/** The options every engine is created with. */
export interface EngineOptions {
  /** Adds X-Forwarded-For/-Port/-Proto/-Host. */
  xfwd: boolean;
  /**
   * Always true: forward the request target exactly as it was routed. (Its
   * only effect in both libraries is to skip re-parsing the path, which in
   * http-proxy-3 is a WHATWG URL parse per request that also normalizes
   * `..` segments, so the upstream could get another path than the one the
   * route table matched.)
   */
  toProxy: true;
}

export type EngineFactory = (options: EngineOptions) => ProxyEngine;

export const httpProxy3Engine: EngineFactory = (options) => createProxyServer({ xfwd: options.xfwd, toProxy: options.toProxy }) as unknown as ProxyEngine;
