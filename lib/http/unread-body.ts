import type { IncomingMessage } from 'node:http';

/**
 * Whether a request still has body bytes on the wire that nobody read:
 * such a connection must close after the answer (or the bytes would be
 * parsed as the next request, or drained for as long as the client sends).
 * `req.complete` alone is not it: a GET without a body is not complete
 * yet while its handler runs synchronously, and closing it would end
 * every keep-alive connection that got a quick 404.
 *
 * @example
 *   if (hasUnreadBody(req)) res.setHeader('connection', 'close');
 */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
