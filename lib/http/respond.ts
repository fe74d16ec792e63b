import type { ServerResponse } from 'node:http';

/** Writes a JSON body with the right headers; the one way services answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/**
 * Writes a body already serialised as JSON (text a caller assembled from
 * cached pieces), with the same headers as sendJson.
 *
 * @example
 *   sendJsonText(res, 201, `{"event":${cachedEventText},"duplicate":false}`);
 */
export function sendJsonText(res: ServerResponse, status: number, payload: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** The error shape every service shares: `{ "code": "…", "message": "…" }`. */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { code, message }, headers);
}
