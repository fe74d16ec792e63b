import { defineErrors, StranglerError, type ErrorCode } from '../lib/errors.ts';

/**
 * Every code the Cloud API answers with, and what it means to the person
 * reading it. runbooks/errors.md is written from this table, so a new code
 * goes here first.
 */
export const CLOUD_ERRORS = defineErrors({
  CLOUD_ERR_UNAUTHORIZED: { status: 401, message: 'no `Authorization: Bearer <token>` header, or the token belongs to no customer.' },
  CLOUD_ERR_ACCOUNT_INACTIVE: { status: 403, message: "the token is valid but the customer's status is not 'active'." },
  CLOUD_ERR_NOT_FOUND: { status: 404, message: "no such droplet or action for this customer (other customers' resources also answer 404)." },
  CLOUD_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'the request body was not sent with Content-Type: application/json.' },
  CLOUD_ERR_BODY_TOO_LARGE: { status: 413, message: 'the request body is over the configured limit (bodyLimit, 64 KiB by default).' },
  CLOUD_ERR_MALFORMED_JSON: { status: 400, message: 'the body is empty, truncated or otherwise not valid JSON.' },
  CLOUD_ERR_INVALID_QUERY: { status: 400, message: 'a query parameter is unknown, repeated or out of range (page >= 1, 1 <= per_page <= 200).' },
  CLOUD_ERR_VALIDATION: { status: 422, message: 'the JSON is well formed but a field is unknown, missing, of the wrong type or out of range; the message names it.' },
  CLOUD_ERR_UNKNOWN_REGION: { status: 422, message: 'the region slug names no region; the message lists the valid ones.' },
  CLOUD_ERR_REGION_UNAVAILABLE: { status: 422, message: 'the region exists but is closed to new droplets.' },
  CLOUD_ERR_UNKNOWN_SIZE: { status: 422, message: 'the size slug names no size; the message lists the valid ones.' },
  CLOUD_ERR_UNKNOWN_IMAGE: { status: 422, message: 'the image slug names no image; the message lists the valid ones.' },
  CLOUD_ERR_SIZE_TOO_SMALL: { status: 422, message: "the size's disk is smaller than the image's minimum disk size." },
  CLOUD_ERR_UNKNOWN_SSH_KEY: { status: 422, message: "an ssh_keys id does not exist in the customer's account." },
  CLOUD_ERR_DROPLET_LIMIT: { status: 422, message: "creating one more droplet would exceed the customer's droplet_limit (archived droplets do not count)." },
  CLOUD_ERR_DROPLET_NOT_READY: { status: 422, message: 'the droplet has no hypervisor yet (its create event is still waiting for the scheduler); retry once it is active.' },
  CLOUD_ERR_DROPLET_BUSY: { status: 422, message: 'the droplet is being destroyed; no further actions are accepted.' },
  CLOUD_ERR_CLIENT_CLOSED: { status: 499, message: 'the client hung up before its request body arrived (usually its own timeout while Cloud was slow); nothing was written and nobody receives this answer.' },
  CLOUD_ERR_EVENTS_UNAVAILABLE: { status: 503, message: "event-writes sends this request's events through Harpoon and Harpoon could not be read (or Cloud has no harpoon option); nothing was written. Creates never need it: they go to the outbox." },
  CLOUD_ERR_DATABASE_UNAVAILABLE: { status: 503, message: 'MySQL could not be reached, the pool timed out, a lock wait timed out or a grant is missing; see the service log.' },
  CLOUD_ERR_INTERNAL: { status: 500, message: 'an unexpected failure; the service log has the stack under the request id.' },
});

export type CloudErrorCode = ErrorCode<typeof CLOUD_ERRORS>;

/** A StranglerError whose status comes from the table. */
export const cloudError: (code: CloudErrorCode, message: string, cause?: unknown) => StranglerError = CLOUD_ERRORS.error;

const HTTP_TO_CLOUD: Record<string, CloudErrorCode> = {
  HTTP_ERR_UNSUPPORTED_MEDIA_TYPE: 'CLOUD_ERR_UNSUPPORTED_MEDIA_TYPE',
  HTTP_ERR_BODY_TOO_LARGE: 'CLOUD_ERR_BODY_TOO_LARGE',
  HTTP_ERR_EMPTY_BODY: 'CLOUD_ERR_MALFORMED_JSON',
  HTTP_ERR_MALFORMED_JSON: 'CLOUD_ERR_MALFORMED_JSON',
  HTTP_ERR_JSON_TOO_DEEP: 'CLOUD_ERR_MALFORMED_JSON',
  HTTP_ERR_CLIENT_CLOSED: 'CLOUD_ERR_CLIENT_CLOSED',
};

// Connection loss, pool exhaustion, lock waits and missing grants are the
// database's state, not a bug in Cloud: the caller may retry, the operator must look at MySQL.
const DATABASE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  // A write to a connection the server has just dropped (a MySQL restart): "This socket has been ended by the other party".
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SERVER_SHUTDOWN',
]);

/**
 * Turns whatever a handler threw into a CLOUD_ERR_ error: the shared HTTP
 * shell's body errors keep their status and message under Cloud's codes,
 * database trouble becomes 503, anything else 500 (logged with its cause).
 */
export function toCloudError(err: unknown): StranglerError {
  if (err instanceof StranglerError) {
    if (err.code.startsWith('CLOUD_ERR_')) return err;
    const mapped = HTTP_TO_CLOUD[err.code];
    if (mapped) return cloudError(mapped, err.message, err);
    return cloudError('CLOUD_ERR_INTERNAL', err.message, err);
  }
  const e = err as { code?: unknown; name?: unknown; fatal?: unknown } | undefined;
  // mysql2 marks connection-level failures `fatal`; a command on a connection the server already dropped
  // ("Can't add new command when connection is in closed state", a ROLLBACK during a MySQL restart) has no code.
  if ((typeof e?.code === 'string' && DATABASE_CODES.has(e.code)) || e?.name === 'KnexTimeoutError' || e?.fatal === true) {
    return cloudError('CLOUD_ERR_DATABASE_UNAVAILABLE', 'the database is unavailable', err);
  }
  return cloudError('CLOUD_ERR_INTERNAL', err instanceof Error ? err.message : String(err), err);
}
