import type { IncomingMessage } from 'node:http';
import type { CompiledRules } from './compare.ts';
import type { Shadower } from './shadow.ts';
import type { Pool } from './upstreams.ts';

/**
 * The legacy answer of a shadowed request, kept as it streams to the client
 * so that, once the exchange is over, the same request can be sent to the
 * new side and the two answers compared (shadow.ts).
 */
export interface ShadowCapture {
  /** The new side's pool for this request (undefined: none for its region). */
  pool: Pool | undefined;
  chunks: Buffer[];
  size: number;
  complete: boolean;
  status: number;
  contentType: string;
  tooLarge: boolean;
}

/** An empty capture for a request routed to legacy while its feature is in shadow mode. */
export function startShadowCapture(pool: Pool | undefined): ShadowCapture {
  return { pool, chunks: [], size: 0, complete: false, status: 0, contentType: '', tooLarge: false };
}

/** Keeps the legacy answer's status, type and body (up to maxCompareBytes) as it is relayed. */
export function captureLegacyAnswer(shadow: ShadowCapture, proxyRes: IncomingMessage, maxCompareBytes: number): void {
  shadow.status = proxyRes.statusCode ?? 0;
  shadow.contentType = String(proxyRes.headers['content-type'] ?? '');
  proxyRes.on('data', (c: Buffer) => {
    shadow.size += c.length;
    if (shadow.size > maxCompareBytes) shadow.tooLarge = true;
    else shadow.chunks.push(c);
  });
  proxyRes.once('end', () => {
    shadow.complete = true;
  });
}

/**
 * After the client got the legacy answer: sends the request to the new side
 * and compares, or counts why not (legacy failed, body too large, closing,
 * too many comparisons in flight).
 *
 * @example
 *   launchShadow(shadower, ctx.shadow, { feature, route, method, url, requestId, headers, body, rules, delivered: res.writableFinished, closing: false });
 */
export function launchShadow(
  shadower: Shadower,
  shadow: ShadowCapture,
  exchange: {
    feature: string;
    route: string;
    method: string;
    url: string;
    requestId: string;
    headers: IncomingMessage['headers'];
    body: Buffer | undefined;
    rules: CompiledRules;
    /** The legacy answer reached the client whole. */
    delivered: boolean;
    closing: boolean;
  },
): void {
  const { feature, route } = exchange;
  if (!shadow.complete || !exchange.delivered || shadow.status === 0) shadower.skip(feature, route, 'legacy_failed');
  else if (shadow.tooLarge) shadower.skip(feature, route, 'body_too_large');
  else if (exchange.closing) shadower.skip(feature, route, 'closing');
  else if (shadower.admit(feature, route)) {
    shadower.run({
      feature,
      route,
      method: exchange.method,
      url: exchange.url,
      requestId: exchange.requestId,
      headers: exchange.headers,
      body: exchange.body,
      legacy: { status: shadow.status, contentType: shadow.contentType, body: Buffer.concat(shadow.chunks) },
      rules: exchange.rules,
      instance: shadow.pool?.pick(),
    });
  }
}
