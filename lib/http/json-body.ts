import type { IncomingMessage } from 'node:http';
import { StranglerError } from '../errors.ts';

/** The default cap on request bodies: enough for any legitimate call, small enough to refuse abuse. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;
/** Nesting no API of ours needs more than a few levels of; deeper is refused before parsing. */
export const DEFAULT_MAX_DEPTH = 32;

/**
 * The deepest nesting of arrays and objects in a JSON text, counted without
 * parsing it (brackets inside strings do not count), stopping as soon as it
 * passes `max`. A 9,000-level body would otherwise reach validators and
 * serializers that recurse, and end as a stack overflow (a 500).
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/**
 * Reads and parses a JSON request body, refusing wrong content types (415),
 * bodies over `limit` bytes (413, without buffering the rest) and
 * malformed JSON (400), and JSON nested deeper than `maxDepth` (400,
 * checked before parsing). A client that hangs up mid-body is a 499
 * (HTTP_ERR_CLIENT_CLOSED), never a server error.
 *
 * @example
 *   const body = await readJsonBody(req, { limit: 16 * 1024 });
 */
export async function readJsonBody(req: IncomingMessage, options: { limit?: number; maxDepth?: number } = {}): Promise<unknown> {
  const limit = options.limit ?? DEFAULT_BODY_LIMIT;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new StranglerError('HTTP_ERR_UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with Content-Type: application/json', {
      status: 415,
    });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new StranglerError('HTTP_ERR_BODY_TOO_LARGE', `request body is ${declared} bytes; the limit is ${limit}`, { status: 413 });
  }
  // Plain 'data'/'end' listeners, not `for await`: the async iterator costs more per request than a
  // one-chunk body's whole parse, and every write to Harpoon reads a body.
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    let size = 0;
    const done = (err?: unknown) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading and buffering; the answer closes the connection (service-server.ts: hasUnreadBody).
        req.pause();
        done(new StranglerError('HTTP_ERR_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, { status: 413 }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done();
    // The socket closed mid-body (ECONNRESET "aborted"): the client gave up, usually on its own
    // timeout while the server was slow. Nobody is left to answer, and it is not the server's
    // fault, so it must not read as a 5xx (or as the database being down) in logs and metrics.
    const closed = (cause: unknown) =>
      done(new StranglerError('HTTP_ERR_CLIENT_CLOSED', 'the client closed the connection before its request body arrived', { status: 499, cause }));
    const onError = (cause: Error) => closed(cause);
    const onClose = () => {
      if (!req.complete) closed(new Error('aborted'));
    };
    if (req.readableEnded) return resolve();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') {
    throw new StranglerError('HTTP_ERR_EMPTY_BODY', 'the request needs a JSON body', { status: 400 });
  }
  if (jsonDepthExceeds(text, maxDepth)) {
    throw new StranglerError('HTTP_ERR_JSON_TOO_DEEP', `the body nests arrays/objects more than ${maxDepth} levels deep; no request needs that`, { status: 400 });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new StranglerError('HTTP_ERR_MALFORMED_JSON', `the body is not valid JSON: ${(cause as Error).message}`, {
      status: 400,
      cause,
    });
  }
}
