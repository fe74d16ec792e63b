import { defineErrors, StranglerError, type ErrorCode } from '../../lib/errors.ts';

/**
 * Every code the cutover control answers with, and what it means to the
 * operator reading it. The HTTP status comes from this table, so the two
 * never disagree; runbooks should be written from it.
 */
export const CUTOVER_ERRORS = defineErrors({
  CUTOVER_ERR_UNAUTHORIZED: { status: 401, message: 'no `Authorization: Bearer <token>` header, or the token is not one of the configured admin tokens. Nothing was changed.' },
  CUTOVER_ERR_FORBIDDEN: { status: 403, message: 'the token is valid but lacks the scope this route needs (read: state/status/plan/history; operate: advance/rollback/pause/resume; lockdown: moving a feature whose step has side effects). Nothing was changed.' },
  CUTOVER_ERR_UNKNOWN_FEATURE: { status: 404, message: 'the feature is not one of the plan\'s features (event-delivery, scheduling, event-writes, event-reads, lockdown).' },
  CUTOVER_ERR_MALFORMED_JSON: { status: 400, message: 'the body is truncated or otherwise not valid JSON.' },
  CUTOVER_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'a body was sent without Content-Type: application/json.' },
  CUTOVER_ERR_BODY_TOO_LARGE: { status: 413, message: 'the body is over the admin API limit (16 KiB).' },
  CUTOVER_ERR_VALIDATION: { status: 422, message: 'a body field or query parameter is unknown, of the wrong type or out of range; the message names it.' },
  CUTOVER_ERR_GATE_FAILED: { status: 422, message: 'advance refused: a gate of the current step did not pass over its soak window. The body carries `readings` (every gate, with verdict pass/fail/no-data/error).' },
  CUTOVER_ERR_SOAKING: { status: 409, message: 'advance refused: the current step has not soaked for its soak_seconds yet; the body has `remaining_seconds`.' },
  CUTOVER_ERR_PAUSED: { status: 409, message: 'advance refused: the feature is paused; resume it first.' },
  CUTOVER_ERR_LAST_STEP: { status: 409, message: 'advance refused: the feature is already at its last step.' },
  CUTOVER_ERR_CONFLICT: { status: 409, message: 'the feature changed while this request ran (another operator, replica or the soak watcher won); re-read the status and retry.' },
  CUTOVER_ERR_REQUIREMENT: { status: 409, message: 'advance refused: the next step requires other features to be at a mode they have not reached (the plan step\'s `requires`, e.g. lockdown needs every writer on Harpoon); the body lists `unmet`.' },
  CUTOVER_ERR_EFFECT_FAILED: { status: 500, message: 'the step\'s side effect (lockdown: REVOKE/GRANT on events) failed, so the state was not changed; the message has the cause. Fix it and run the same verb again (effects are idempotent).' },
  CUTOVER_ERR_PLAN_MISMATCH: { status: 409, message: 'the stored step is beyond the plan\'s steps (the plan file changed); roll back, or fix the plan.' },
  CUTOVER_ERR_DATABASE_UNAVAILABLE: { status: 503, message: 'MySQL could not be reached or refused the query (down, pool timeout, missing grant); a change in flight was rolled back with its transaction, so check the status before retrying. The service log has the cause under the request id.' },
  CUTOVER_ERR_INTERNAL: { status: 500, message: 'an unexpected failure; the service log has the stack under the request id.' },
  CUTOVER_ERR_INVALID_PLAN: { status: 500, message: 'start-up: the plan file is not valid; the message names every bad field (features.<f>.steps[i].gates[j].<field>).' },
  CUTOVER_ERR_BAD_SELECTOR: { status: 500, message: 'start-up: a metric selector in the plan is not `name{label="value",…}` with =, !=, =~ or !~.' },
  CUTOVER_ERR_SCRAPE: { status: 502, message: 'a service\'s /metrics could not be fetched (down, timeout, non-200, or no URL configured). Shows up as a gate reading with verdict error.' },
  CUTOVER_ERR_PROVIDER: { status: 502, message: 'a metric provider (Prometheus query, web JSON endpoint, database observer) could not answer: down, timeout, non-2xx, not JSON, a refused query, or no value that is a number. Shows up as a gate reading with verdict error (never rolls back).' },
  CUTOVER_ERR_CONFIRM_BLOCKED: { status: 409, message: 'a confirm webhook of the plan answered non-2xx, or not within its timeout after its retries, so the step was not entered; the body names the webhook and its answer. The autopilot retries at its next analysis.' },
  CUTOVER_ERR_NOT_WAITING: { status: 409, message: 'promote refused: the feature has no autopilot run waiting for manual judgement (start one with `strangler cutover run`, or check `strangler cutover status`).' },
  CUTOVER_ERR_NO_RUN: { status: 409, message: 'stop refused: the feature has no autopilot run.' },
  CUTOVER_ERR_UNREACHABLE: { status: 503, message: 'CLI: the admin API did not answer at --url (or STRANGLER_ADMIN_URL). Exit 1.' },
  CUTOVER_ERR_BAD_RESPONSE: { status: 502, message: 'CLI: the admin API answered with something that is not the expected JSON. Exit 1.' },
});

export type CutoverErrorCode = ErrorCode<typeof CUTOVER_ERRORS>;

/**
 * A StranglerError that may carry extra JSON fields for the response body
 * (the gate readings of a refused advance, the seconds left to soak).
 */
export class CutoverError extends StranglerError {
  readonly details: Record<string, unknown>;

  constructor(code: CutoverErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(code, message, { status: CUTOVER_ERRORS.status(code), ...(cause === undefined ? {} : { cause }) });
    this.name = 'CutoverError';
    this.details = details;
  }
}

export function cutoverError(code: CutoverErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): CutoverError {
  return new CutoverError(code, message, details, cause);
}

