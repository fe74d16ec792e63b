import { defineErrors, StranglerError, type ErrorCode } from '../lib/errors.ts';

/**
 * Every code Harpoon answers with: { status, message }. runbooks/errors.md
 * and harpoon/README.md follow this table.
 */
export const HARPOON_ERRORS = defineErrors({
  HARPOON_ERR_UNAUTHORIZED: { status: 401, message: 'no bearer token, or one that is neither a configured service token nor (on /v2/actions) a customer API token.' },
  HARPOON_ERR_FORBIDDEN: { status: 403, message: 'a customer token used on a service endpoint (writes, /v1/events, the stream), an inactive customer account, a service token without the scope, or a region-bound token (a router\'s) naming another region\'s events. Nothing was written.' },
  HARPOON_ERR_NOT_FOUND: { status: 404, message: 'no such event or action (another customer\'s actions also answer 404).' },
  HARPOON_ERR_VALIDATION: { status: 422, message: 'the JSON is well formed but a field is unknown, missing, of the wrong type or out of range; the message names it. Nothing was written.' },
  HARPOON_ERR_WRONG_SERVER: { status: 422, message: 'a non-create event for a droplet names another hypervisor than the one the droplet\'s latest placed create event put it on, no hypervisor, or the droplet\'s create is not placed yet. Nothing was written.' },
  HARPOON_ERR_UNKNOWN_REGION: { status: 422, message: 'the region slug names no region; the message lists the valid ones. Nothing was written.' },
  HARPOON_ERR_UNKNOWN_SIZE: { status: 422, message: 'args.size names no size; the message lists the valid ones. Nothing was written.' },
  HARPOON_ERR_INVALID_QUERY: { status: 400, message: 'a query parameter is unknown, repeated or out of range (cursor, limit, page, per_page, filters).' },
  HARPOON_ERR_ILLEGAL_TRANSITION: { status: 409, message: 'the status change is not allowed from the event\'s current status (done and error are final; pending → running → done|error). Repeating the current status is not an error.' },
  HARPOON_ERR_ALREADY_PLACED: { status: 409, message: 'server_id differs from the hypervisor the event is already placed on, or the event is no longer pending.' },
  HARPOON_ERR_KEY_CONFLICT: { status: 409, message: 'an idempotency key was reused for a different event (other type, region or droplet) than the one it created.' },
  HARPOON_ERR_BACKPRESSURE: { status: 429, message: 'the write or read queue is full (Harpoon is saturated); nothing of this request was accepted. Retry after the Retry-After seconds.' },
  HARPOON_ERR_UNAVAILABLE: { status: 503, message: 'MySQL failed or timed out while committing or reading; nothing of this request was committed. Retry (with the same key for creates).' },
  HARPOON_ERR_SHUTTING_DOWN: { status: 503, message: 'this replica is closing; retry on another replica (streams: reconnect with Last-Event-ID).' },
  HARPOON_ERR_CURSOR_AHEAD: { status: 400, message: 'the stream cursor is beyond the newest change this replica knows; use a cursor you received from a stream.' },
  HARPOON_ERR_CURSOR_TOO_OLD: { status: 410, message: 'the stream cursor is older than the oldest change event_log still keeps (entries past the retention window are pruned); read the current state (GET /v1/events, whose answer carries a cursor) and resume the stream from that cursor. Also sent as an `event: too-old` frame when pruning overtakes a catch-up.' },
  HARPOON_ERR_INTERNAL: { status: 500, message: 'an unexpected failure; the service log has the stack under the request id (also: start-up of harpoon/main.ts failed).' },
  HARPOON_ERR_START: { status: 500, message: 'a Harpoon replica process (harpoon/replicas.ts) exited before it answered /readyz, or did not answer within the timeout; the message carries the end of its output.' },
  HARPOON_ERR_LOCKDOWN_PREFLIGHT: { status: 409, message: 'the lockdown step was refused before it revoked anything: users other than Harpoon (and the hand-offs) were seen touching event data in the preflight window; the message names them. Nothing was revoked.' },
  HARPOON_ERR_LOCKDOWN: { status: 500, message: 'lockdown or its rollback could not change a grant; the message names the user and privilege. Nothing recorded was lost: run it again.' },
});

export type HarpoonErrorCode = ErrorCode<typeof HARPOON_ERRORS>;

/** A StranglerError whose status comes from the table. */
export const harpoonError: (code: HarpoonErrorCode, message: string, cause?: unknown) => StranglerError = HARPOON_ERRORS.error;
