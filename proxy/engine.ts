import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { pipeEngine } from './pipe-engine.ts';

// Which engine forwards a request, measured (bench/proxy.ts, `npm run
// bench:proxy`: wrk, 50 connections, 5 alternating rounds of 5 s; five
// runs on 2026-12-01 on this 2-core machine shared with other work, four at
// load average 27-40 and one at 7-4; medians of the runs, README "Proxy vs
// a bare Node pass-through"):
//
//                        CPU per request vs bare    req/s vs bare
//   pipe (default)       1.07 (0.99-1.18)           0.96
//   original http-proxy  1.34 (1.17-1.37)           0.81
//   http-proxy-3         1.58 (1.42-1.63)           0.61
//
// At that load req/s moved 3x between rounds, so the ratio of req/s cannot
// rank the engines; CPU per request can, and with all four servers loaded
// at once (so that they share the same contention) it ranked them the same
// way: pipe 0.98-1.26x the bare pass-through, the original 1.22-1.99x,
// http-proxy-3 1.60-2.19x.
// The pipe engine (pipe-engine.ts) is the default: one http.request per
// attempt piped back, the same work as the bare pass-through. http-proxy-3
// spends its extra CPU on per-request generality this proxy never uses:
// options merged per request, a pass loop, a copy of every header with a
// blacklist scan, urlJoin, a follow-redirects switch, and five event
// emissions plus four listeners per request.
// http-proxy-3 stays the library behind the http-proxy API
// (`httpProxy3Engine`, one option away), not the original: with the
// original alone, 20 agents that dropped their SSE streams left all 20
// upstream streams open (it only aborts on req 'aborted', which Node no
// longer emits once a GET is complete), and it is unmaintained since 2020
// and built on APIs Node deprecates (util._extend, a runtime warning from
// Node 22; url.parse; req.abort()); http-proxy-3 is a maintained rewrite of
// the same API, with types. create-proxy.ts tears the upstream down on
// client close itself, so every engine is safe there. http-proxy-3 2.x
// needs Node 22; this repo targets Node 20, hence 1.x.

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
  /** The request body, already read (so a failed attempt can be retried); absent for a request without one. */
  body?: Buffer;
}

export type EngineErrorCallback = (err: NodeJS.ErrnoException, req: IncomingMessage, res: ServerResponse | unknown) => void;

/**
 * The part of the http-proxy API the proxy uses: the pipe engine, and
 * http-proxy and http-proxy-3 through `httpProxyApi`. `proxyReq` fires once
 * per attempt with the outgoing request (http-proxy emits it at once, the
 * others once a socket is assigned); `proxyRes` before the answer's headers
 * are copied. The caller destroys an attempt whose client went away.
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

/** What createProxyServer returns, in both http-proxy libraries (the part used here). */
interface HttpProxyServer {
  web(req: IncomingMessage, res: ServerResponse, options: { target: EngineTarget; agent: Agent; buffer?: Readable }, callback: EngineErrorCallback): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/**
 * An engine from an http-proxy library's createProxyServer (http-proxy-3,
 * or the original http-proxy, which bench/proxy.ts passes in while it is
 * installed as a devDependency).
 *
 * @example
 *   createProxy({ routes, state, engine: httpProxyApi((await import('http-proxy')).default.createProxyServer) });
 */
export function httpProxyApi(create: (options: { xfwd: boolean; toProxy: boolean }) => unknown): EngineFactory {
  return (options) => {
    const server = create({ xfwd: options.xfwd, toProxy: options.toProxy }) as HttpProxyServer;
    const engine: ProxyEngine = {
      web(req, res, { target, agent, body }, callback) {
        // A request stream nobody has read yet is piped as it is; a retry (the stream is spent) or a read body is replayed.
        const buffer = body !== undefined ? Readable.from([body], { objectMode: false }) : req.readableFlowing === null ? undefined : Readable.from([], { objectMode: false });
        server.web(req, res, buffer === undefined ? { target, agent } : { target, agent, buffer }, callback);
      },
      on(event: string, listener: (...args: never[]) => void) {
        server.on(event, listener);
        return engine;
      },
    };
    return engine;
  };
}

export const httpProxy3Engine: EngineFactory = httpProxyApi(createProxyServer as (options: { xfwd: boolean; toProxy: boolean }) => unknown);

/** The engine createProxy uses by default (see the measurements at the top of this file). */
export const defaultEngine: EngineFactory = pipeEngine;
