import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { pipeEngine } from './pipe-engine.ts';

// The default engine is pipe-engine.ts; http-proxy-3 stays one option away. Why, with the measurements:
// docs/benchmarks/proxy-2026-12-01.md ("Which engine forwards a request").

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
