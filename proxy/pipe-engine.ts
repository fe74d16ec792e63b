import { EventEmitter } from 'node:events';
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { EngineErrorCallback, EngineOptions, EngineWebOptions, ProxyEngine } from './engine.ts';

const EXCHANGE = Symbol('strangler.proxy.exchange');

interface Exchange {
  readonly engine: PipeEngine;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly callback: EngineErrorCallback;
}

type Attempt = ClientRequest & { [EXCHANGE]?: Exchange };

/**
 * One attempt's outgoing request, as http-proxy-3 builds it for the options
 * this proxy uses (no changeOrigin, no rewrites, `toProxy`): the client's
 * headers as they are (Host included) but for the hop-by-hop ones, the path appended to the target's
 * base path, `x-forwarded-*` when asked, a DELETE/OPTIONS without a length
 * sent with `content-length: 0`, and no `trailer` header (there is no body
 * stream to carry trailers: bodies are read before forwarding).
 */
function outgoingHeaders(req: IncomingMessage, xfwd: boolean): IncomingMessage['headers'] {
  const headers = req.headers;
  // Hop-by-hop headers describe the client's connection to us, not ours to the upstream (RFC 9110
  // 7.6.1): the upstream hop is the agent's keep-alive socket. Forwarding a client's
  // `Connection: close` made the upstream close (or refuse, 400 "Data after Connection: close") a
  // socket the agent then reused for the next request.
  const connection = headers.connection;
  if (connection !== undefined) {
    for (const name of connection.split(',')) {
      const token = name.trim().toLowerCase();
      if (token !== '' && token !== 'connection') delete headers[token];
    }
    delete headers.connection;
  }
  if (headers['keep-alive'] !== undefined) delete headers['keep-alive'];
  if (headers['proxy-connection'] !== undefined) delete headers['proxy-connection'];
  if ((req.method === 'DELETE' || req.method === 'OPTIONS') && !headers['content-length']) {
    headers['content-length'] = '0';
    delete headers['transfer-encoding'];
  }
  if (xfwd) {
    const values: Record<'for' | 'port' | 'proto', string> = { for: req.socket.remoteAddress ?? '', port: /:(\d+)/.exec(headers.host ?? '')?.[1] ?? '80', proto: 'http' };
    for (const name of ['for', 'port', 'proto'] as const) {
      const prior = headers[`x-forwarded-${name}`];
      headers[`x-forwarded-${name}`] = prior ? `${prior},${values[name]}` : values[name];
    }
    headers['x-forwarded-host'] ??= headers.host ?? '';
  }
  if (headers.trailer === undefined) return headers;
  const { trailer: _dropped, ...rest } = headers;
  return rest;
}

// The listeners are shared functions (`this` is the attempt), not closures:
// this path runs once per proxied request. They are added with on(), not
// once(): a request emits 'socket' and 'response' once each, and once() would
// wrap each listener in a new closure per request.
function onSocket(this: Attempt): void {
  const x = this[EXCHANGE]!;
  x.engine.emit('proxyReq', this, x.req, x.res);
}

function onError(this: Attempt, err: NodeJS.ErrnoException): void {
  const x = this[EXCHANGE]!;
  if (x.req.socket.destroyed && err.code === 'ECONNRESET') {
    x.engine.emit('econnreset', err, x.req, x.res);
    this.destroy();
    return;
  }
  x.callback(err, x.req, x.res);
}

function onResponse(this: Attempt, proxyRes: IncomingMessage): void {
  const { engine, req, res } = this[EXCHANGE]!;
  engine.emit('proxyRes', proxyRes, req, res);
  if (!res.headersSent && !res.destroyed) {
    const headers = proxyRes.headers;
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
      // An HTTP/1.0 client cannot read chunked framing: the answer ends with the connection.
      delete headers['transfer-encoding'];
      headers.connection = req.headers.connection ?? 'close';
    }
    if (proxyRes.statusMessage) res.writeHead(proxyRes.statusCode!, proxyRes.statusMessage, headers);
    else res.writeHead(proxyRes.statusCode!, headers);
  }
  if (!res.writableEnded) proxyRes.pipe(res);
}

/**
 * The hot path without a library: one `http.request` per attempt over the
 * instance's keep-alive agent, the answer piped back, the events of the
 * http-proxy API (`proxyReq` once a socket is assigned, `proxyRes` before
 * the headers are copied, `econnreset`) emitted the way http-proxy-3 emits
 * them, so create-proxy.ts drives both the same way. The caller owns the
 * attempt's lifetime: it destroys `proxyReq` when the client goes away
 * (create-proxy does, in its response 'close' handler), and reads request
 * bodies before forwarding (`body`), so the client's request stream is
 * never piped.
 */
class PipeEngine extends EventEmitter implements ProxyEngine {
  constructor(private readonly options: EngineOptions) {
    super();
  }

  web(req: IncomingMessage, res: ServerResponse, { target, agent, body }: EngineWebOptions, callback: EngineErrorCallback): void {
    const proxyReq: Attempt = request({
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      // toProxy: the request target exactly as the route table matched it (never re-parsed or normalized).
      path: target.pathname === undefined ? req.url : `${target.pathname}${req.url}`,
      headers: outgoingHeaders(req, this.options.xfwd),
      agent,
    });
    proxyReq[EXCHANGE] = { engine: this, req, res, callback };
    proxyReq.on('socket', onSocket);
    proxyReq.on('error', onError);
    proxyReq.on('response', onResponse);
    proxyReq.end(body);
  }
}

/** The thin engine (see the measurements in engine.ts). */
export const pipeEngine = (options: EngineOptions): ProxyEngine => new PipeEngine(options);
