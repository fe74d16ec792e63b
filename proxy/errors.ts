import { defineErrors, StranglerError, type ErrorCode } from '../lib/errors.ts';

/**
 * Every code the proxy answers with (as `{ "code", "message" }` JSON) and
 * what it means. Codes from the upstream itself pass through untouched; these
 * are only the proxy's own answers.
 */
export const PROXY_ERRORS = defineErrors({
  PROXY_ERR_NO_ROUTE: { status: 404, message: 'no route in the table matches the path; the proxy forwards only what the table names.' },
  PROXY_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'the path is routed, but not for this method; the Allow header lists the routed ones.' },
  PROXY_ERR_BAD_PATH: { status: 400, message: 'a path segment is not valid percent-encoding.' },
  PROXY_ERR_UNKNOWN_REGION: { status: 404, message: 'the region taken from the path or header is not one the route table serves.' },
  PROXY_ERR_NO_REGION: { status: 400, message: 'the route is region-aware but the request names no region (missing header).' },
  PROXY_ERR_BODY_TOO_LARGE: { status: 413, message: 'the request body is over bodyLimit (by Content-Length, or counted while reading a chunked body).' },
  PROXY_ERR_NO_HEALTHY_UPSTREAM: { status: 503, message: 'every instance of the chosen target pool is failing its health checks, and the attempt to use them anyway (panic routing) failed too.' },
  PROXY_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'the upstream refused or reset the connection, or broke off its answer (after failover, for idempotent methods).' },
  PROXY_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream did not accept the connection within connectTimeoutMs or did not answer within responseTimeoutMs.' },
  PROXY_ERR_SHUTTING_DOWN: { status: 503, message: 'the proxy is closing; retry, another replica or worker will answer.' },
  PROXY_ERR_BAD_QUERY: { status: 400, message: 'an admin route got a query parameter out of range (the message names it).' },
  PROXY_ERR_UNAUTHORIZED: { status: 401, message: 'an admin route was called without the admin token (Authorization: Bearer <token>).' },
  PROXY_ERR_INVALID_CONFIG: { status: 500, message: 'start-up: the proxy config file is not valid (unreadable, not JSON, or a field out of range); the message and details.errors name each JSON path and value.' },
  PROXY_ERR_INTERNAL: { status: 500, message: 'an unexpected failure in the proxy; its log has the stack under the request id.' },
});

export type ProxyErrorCode = ErrorCode<typeof PROXY_ERRORS>;

export const proxyStatus: (code: ProxyErrorCode) => number = PROXY_ERRORS.status;

/** A StranglerError whose status comes from the table. */
export const proxyError: (code: ProxyErrorCode, message: string, cause?: unknown) => StranglerError = PROXY_ERRORS.error;
