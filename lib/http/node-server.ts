import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.ts';

/**
 * The slow-client defence every listening port of the system shares (the
 * services' shell and the proxy's data port).
 */
export const SERVER_TIMEOUTS = {
  /** The request line and headers must have arrived this long after the connection (or the previous request). */
  headersTimeout: 10_000,
  /** The whole request, body included. */
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  // Node enforces the two timeouts above only when it sweeps its connections, every 30 s by
  // default: a client sending its headers byte by byte held its socket for up to 40 s, not 10.
  connectionsCheckingInterval: 1_000,
} as const;

/** What the parser refused, as the shared `{ code, message }` answer. */
function clientErrorAnswer(err: NodeJS.ErrnoException): { status: number; reason: string; code: string; message: string } {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        reason: 'Request Timeout',
        code: 'HTTP_ERR_REQUEST_TIMEOUT',
        message: `the request did not arrive in time (headers within ${SERVER_TIMEOUTS.headersTimeout / 1000} s, the whole request within ${SERVER_TIMEOUTS.requestTimeout / 1000} s); the connection is closed`,
      };
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        reason: 'Request Header Fields Too Large',
        code: 'HTTP_ERR_HEADERS_TOO_LARGE',
        message: 'the request line and headers together exceed 16 KiB; send a shorter path, fewer or shorter headers',
      };
    default:
      return {
        status: 400,
        reason: 'Bad Request',
        code: 'HTTP_ERR_BAD_REQUEST',
        message: `the request is not valid HTTP/1.1 (${String(err.code ?? 'parse error').slice(0, 40)}: ${String(err.message).slice(0, 120)}); the connection is closed`,
      };
  }
}

/**
 * Answers what Node's HTTP parser refused (malformed request line or
 * headers, headers over 16 KiB, a slow client past its timeout) with the
 * same JSON error shape as every handler, then closes the connection.
 * Nothing is written into a response already under way on the socket.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, logger: Logger): void {
  logger.debug({ err: err.message, code: err.code }, 'client error');
  // Node's own rule (socketOnError): reply only if no response on this socket has sent its headers.
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || (inFlight && inFlight.headersSent)) {
    socket.destroy();
    return;
  }
  const a = clientErrorAnswer(err);
  const body = JSON.stringify({ code: a.code, message: a.message });
  socket.end(
    `HTTP/1.1 ${a.status} ${a.reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/**
 * A node:http server with SERVER_TIMEOUTS and answerClientError.
 *
 * @example
 *   const server = createNodeServer((req, res) => res.end('ok'), logger);
 */
export function createNodeServer(handler: (req: IncomingMessage, res: ServerResponse) => void, logger: Logger): Server {
  const server = createServer({ ...SERVER_TIMEOUTS }, handler);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, logger));
  return server;
}
