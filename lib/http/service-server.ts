import { hasUnreadBody } from './unread-body.ts';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, type Registry } from 'prom-client';
import { StranglerError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createNodeServer } from './node-server.ts';
import { sendError, sendJson } from './respond.ts';
import type { Router } from './router.ts';

export interface HttpServiceOptions {
  /** Service name, used in logs and as a metrics label. */
  name: string;
  router: Router;
  registry: Registry;
  logger: Logger;
  host?: string;
  port?: number;
  /** Reports whether the service can take traffic (its dependencies answer). */
  ready?: () => boolean | Promise<boolean>;
}

export interface HttpService {
  start(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
  readonly server: Server;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The HTTP shell every service shares: `/metrics`, `/healthz`, `/readyz`,
 * JSON errors with a code, `X-Request-Id` propagation, request metrics,
 * and timeouts that cut off clients sending headers byte by byte.
 * `close()` stops accepting, lets in-flight requests finish, and is idempotent.
 *
 * @example
 *   const http = createHttpService({ name: 'cloud', router, registry, logger });
 *   const { url } = await http.start();
 */
export function createHttpService(options: HttpServiceOptions): HttpService {
  const { router, registry, logger } = options;
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames: ['service', 'route', 'method', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route pattern and method.',
    labelNames: ['service', 'route', 'method'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  // The labelled children, found once per label set: prom-client sorts and hashes a label object on
  // every inc/observe, a cost every request paid twice. Route patterns and statuses are bounded sets.
  const counted = new Map<string, Counter.Internal>();
  const timed = new Map<string, Histogram.Internal<string>>();
  function record(route: string, method: string, status: number, seconds: number): void {
    const key = `${route} ${method}`;
    let timer = timed.get(key);
    if (!timer) timed.set(key, (timer = duration.labels({ service: options.name, route, method })));
    timer.observe(seconds);
    const countKey = `${key} ${status}`;
    let counter = counted.get(countKey);
    if (!counter) counted.set(countKey, (counter = requests.labels({ service: options.name, route, method, status: String(status) })));
    counter.inc();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', requestId);
    // The path exactly as sent, as the proxy routes it: WHATWG URL parsing would resolve `/x/../metrics`
    // and `%2e%2e` segments, so a service could serve another route than the one the proxy chose.
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const pathname = q === -1 ? target : target.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
    const method = req.method ?? 'GET';
    let route = 'unmatched';
    try {
      if (pathname === '/metrics' && method === 'GET') {
        route = '/metrics';
        const body = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      } else if (pathname === '/healthz' && method === 'GET') {
        route = '/healthz';
        sendJson(res, 200, { status: 'ok', service: options.name });
      } else if (pathname === '/readyz' && method === 'GET') {
        route = '/readyz';
        const ready = options.ready ? await options.ready() : true;
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', service: options.name });
      } else {
        const match = router.match(method, pathname); // throws a 400 on malformed percent-encoding
        if (!match) {
          sendError(res, 404, 'HTTP_ERR_NOT_FOUND', `no route for ${method.slice(0, 16)} ${JSON.stringify(pathname.slice(0, 200))}`);
        } else if ('allowed' in match) {
          sendError(res, 405, 'HTTP_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${match.allowed.join(', ')}`, {
            allow: match.allowed.join(', '),
          });
        } else {
          route = match.pattern;
          await match.handler({ req, res, params: match.params, query, requestId });
        }
      }
    } catch (err) {
      const known = err instanceof StranglerError && err.status < 500;
      if (!known) logger.error({ err, requestId, method, route }, 'request failed');
      if (hasUnreadBody(req) && !res.headersSent) res.setHeader('connection', 'close');
      if (!res.headersSent) {
        if (err instanceof StranglerError) {
          sendError(res, err.status, err.code, err.status >= 500 ? `internal error; see the service log for request ${requestId}` : err.message);
        } else {
          sendError(res, 500, 'HTTP_ERR_INTERNAL', `internal error; see the service log for request ${requestId}`);
        }
      } else {
        res.destroy();
      }
    } finally {
      // A body we stopped reading (over the limit) or never read (refused before it was needed) must
      // not be parsed as the next request, nor drained for as long as the client cares to send it.
      // The socket is already gone (null) when the client hung up.
      if (hasUnreadBody(req)) {
        const socket = req.socket as typeof req.socket | null;
        if (res.writableFinished) socket?.destroySoon();
        else res.once('finish', () => socket?.destroySoon());
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      record(route, method, res.statusCode, seconds);
    }
  }

  const server = createNodeServer((req, res) => {
    // handle() answers every error itself; anything escaping it is a bug here, and must cost one
    // connection, never the process (an unhandled rejection ends a Node process).
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, 'request handling failed');
      res.destroy();
    });
  }, logger);

  let closing: Promise<void> | undefined;
  return {
    server,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      const { port } = server.address() as AddressInfo;
      const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
      logger.info({ url }, `${options.name} listening`);
      return { port, url };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
