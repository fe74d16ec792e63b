import { StranglerError } from '../lib/errors.ts';

/**
 * Every code the proxy answers with (as `{ "code", "message" }` JSON) and
 * what it means. Codes from the upstream itself pass through untouched; these
 * are only the proxy's own answers.
 */
export const PROXY_ERROR_CODES = {
  PROXY_ERR_NO_ROUTE: '404: no route in the table matches the path; the proxy forwards only what the table names.',
  PROXY_ERR_METHOD_NOT_ALLOWED: '405: the path is routed, but not for this method; the Allow header lists the routed ones.',
  PROXY_ERR_BAD_PATH: '400: a path segment is not valid percent-encoding.',
  PROXY_ERR_UNKNOWN_REGION: '404: the region taken from the path or header is not one the route table serves.',
  PROXY_ERR_NO_REGION: '400: the route is region-aware but the request names no region (missing header).',
  PROXY_ERR_BODY_TOO_LARGE: '413: the request body is over bodyLimit (by Content-Length, or counted while reading a chunked body).',
  PROXY_ERR_NO_HEALTHY_UPSTREAM: '503: every instance of the chosen target pool is failing its health checks, and the attempt to use them anyway (panic routing) failed too.',
  PROXY_ERR_UPSTREAM_UNAVAILABLE: '502: the upstream refused or reset the connection, or broke off its answer (after failover, for idempotent methods).',
  PROXY_ERR_UPSTREAM_TIMEOUT: '504: the upstream did not accept the connection within connectTimeoutMs or did not answer within responseTimeoutMs.',
  PROXY_ERR_SHUTTING_DOWN: '503: the proxy is closing; retry, another replica or worker will answer.',
  PROXY_ERR_BAD_QUERY: '400: an admin route got a query parameter out of range (the message names it).',
  PROXY_ERR_UNAUTHORIZED: '401: an admin route was called without the admin token (Authorization: Bearer <token>).',
  PROXY_ERR_INTERNAL: '500: an unexpected failure in the proxy; its log has the stack under the request id.',
} as const;

export type ProxyErrorCode = keyof typeof PROXY_ERROR_CODES;

const STATUS: Record<ProxyErrorCode, number> = {
  PROXY_ERR_NO_ROUTE: 404,
  PROXY_ERR_METHOD_NOT_ALLOWED: 405,
  PROXY_ERR_BAD_PATH: 400,
  PROXY_ERR_UNKNOWN_REGION: 404,
  PROXY_ERR_NO_REGION: 400,
  PROXY_ERR_BODY_TOO_LARGE: 413,
  PROXY_ERR_NO_HEALTHY_UPSTREAM: 503,
  PROXY_ERR_UPSTREAM_UNAVAILABLE: 502,
  PROXY_ERR_UPSTREAM_TIMEOUT: 504,
  PROXY_ERR_SHUTTING_DOWN: 503,
  PROXY_ERR_BAD_QUERY: 400,
  PROXY_ERR_UNAUTHORIZED: 401,
  PROXY_ERR_INTERNAL: 500,
};

export function proxyStatus(code: ProxyErrorCode): number {
  return STATUS[code];
}

/** A StranglerError carrying one of the proxy's codes and its HTTP status. */
export function proxyError(code: ProxyErrorCode, message: string, cause?: unknown): StranglerError {
  return new StranglerError(code, message, { status: STATUS[code], ...(cause === undefined ? {} : { cause }) });
}
