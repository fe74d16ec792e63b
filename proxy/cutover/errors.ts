import { StranglerError } from '../../lib/errors.ts';

/**
 * Every code the cutover control answers with, and what it means to the
 * operator reading it. The HTTP status comes from this table, so the two
 * never disagree; runbooks should be written from it.
 */
export const CUTOVER_ERROR_CODES = {
  CUTOVER_ERR_UNAUTHORIZED: '401: no `Authorization: Bearer <token>` header, or the token is not one of the configured admin tokens. Nothing was changed.',
  CUTOVER_ERR_FORBIDDEN: '403: the token is valid but lacks the scope this route needs (read: state/status/plan/history; operate: advance/rollback/pause/resume; lockdown: moving a feature whose step has side effects). Nothing was changed.',
  CUTOVER_ERR_UNKNOWN_FEATURE: '404: the feature is not one of the plan\'s features (event-delivery, scheduling, event-writes, event-reads, lockdown).',
  CUTOVER_ERR_MALFORMED_JSON: '400: the body is truncated or otherwise not valid JSON.',
  CUTOVER_ERR_UNSUPPORTED_MEDIA_TYPE: '415: a body was sent without Content-Type: application/json.',
  CUTOVER_ERR_BODY_TOO_LARGE: '413: the body is over the admin API limit (16 KiB).',
  CUTOVER_ERR_VALIDATION: '422: a body field or query parameter is unknown, of the wrong type or out of range; the message names it.',
  CUTOVER_ERR_GATE_FAILED: '422: advance refused: a gate of the current step did not pass over its soak window. The body carries `readings` (every gate, with verdict pass/fail/no-data/error).',
  CUTOVER_ERR_SOAKING: '409: advance refused: the current step has not soaked for its soak_seconds yet; the body has `remaining_seconds`.',
  CUTOVER_ERR_PAUSED: '409: advance refused: the feature is paused; resume it first.',
  CUTOVER_ERR_LAST_STEP: '409: advance refused: the feature is already at its last step.',
  CUTOVER_ERR_CONFLICT: '409: the feature changed while this request ran (another operator, replica or the soak watcher won); re-read the status and retry.',
  CUTOVER_ERR_REQUIREMENT: '409: advance refused: the next step requires other features to be at a mode they have not reached (the plan step\'s `requires`, e.g. lockdown needs every writer on Harpoon); the body lists `unmet`.',
  CUTOVER_ERR_EFFECT_FAILED: '500: the step\'s side effect (lockdown: REVOKE/GRANT on events) failed, so the state was not changed; the message has the cause. Fix it and run the same verb again (effects are idempotent).',
  CUTOVER_ERR_PLAN_MISMATCH: '409: the stored step is beyond the plan\'s steps (the plan file changed); roll back, or fix the plan.',
  CUTOVER_ERR_DATABASE_UNAVAILABLE: '503: MySQL could not be reached or refused the query (down, pool timeout, missing grant); a change in flight was rolled back with its transaction, so check the status before retrying. The service log has the cause under the request id.',
  CUTOVER_ERR_INTERNAL: '500: an unexpected failure; the service log has the stack under the request id.',
  CUTOVER_ERR_INVALID_PLAN: 'start-up: the plan file is not valid; the message names every bad field (features.<f>.steps[i].gates[j].<field>).',
  CUTOVER_ERR_BAD_SELECTOR: 'start-up: a metric selector in the plan is not `name{label="value",…}` with =, !=, =~ or !~.',
  CUTOVER_ERR_SCRAPE: 'a service\'s /metrics could not be fetched (down, timeout, non-200, or no URL configured). Shows up as a gate reading with verdict error.',
  CUTOVER_ERR_PROVIDER: 'a metric provider (Prometheus query, web JSON endpoint, database observer) could not answer: down, timeout, non-2xx, not JSON, a refused query, or no value that is a number. Shows up as a gate reading with verdict error (never rolls back).',
  CUTOVER_ERR_CONFIRM_BLOCKED: '409: a confirm webhook of the plan answered non-2xx, or not within its timeout after its retries, so the step was not entered; the body names the webhook and its answer. The autopilot retries at its next analysis.',
  CUTOVER_ERR_NOT_WAITING: '409: promote refused: the feature has no autopilot run waiting for manual judgement (start one with `strangler cutover run`, or check `strangler cutover status`).',
  CUTOVER_ERR_NO_RUN: '409: stop refused: the feature has no autopilot run.',
  CUTOVER_ERR_UNREACHABLE: 'CLI: the admin API did not answer at --url (or STRANGLER_ADMIN_URL). Exit 1.',
  CUTOVER_ERR_BAD_RESPONSE: 'CLI: the admin API answered with something that is not the expected JSON. Exit 1.',
} as const;

export type CutoverErrorCode = keyof typeof CUTOVER_ERROR_CODES;

const STATUS: Record<CutoverErrorCode, number> = {
  CUTOVER_ERR_UNAUTHORIZED: 401,
  CUTOVER_ERR_FORBIDDEN: 403,
  CUTOVER_ERR_UNKNOWN_FEATURE: 404,
  CUTOVER_ERR_MALFORMED_JSON: 400,
  CUTOVER_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  CUTOVER_ERR_BODY_TOO_LARGE: 413,
  CUTOVER_ERR_VALIDATION: 422,
  CUTOVER_ERR_GATE_FAILED: 422,
  CUTOVER_ERR_REQUIREMENT: 409,
  CUTOVER_ERR_EFFECT_FAILED: 500,
  CUTOVER_ERR_SOAKING: 409,
  CUTOVER_ERR_PAUSED: 409,
  CUTOVER_ERR_LAST_STEP: 409,
  CUTOVER_ERR_CONFLICT: 409,
  CUTOVER_ERR_PLAN_MISMATCH: 409,
  CUTOVER_ERR_DATABASE_UNAVAILABLE: 503,
  CUTOVER_ERR_INTERNAL: 500,
  CUTOVER_ERR_INVALID_PLAN: 500,
  CUTOVER_ERR_BAD_SELECTOR: 500,
  CUTOVER_ERR_SCRAPE: 502,
  CUTOVER_ERR_PROVIDER: 502,
  CUTOVER_ERR_CONFIRM_BLOCKED: 409,
  CUTOVER_ERR_NOT_WAITING: 409,
  CUTOVER_ERR_NO_RUN: 409,
  CUTOVER_ERR_UNREACHABLE: 503,
  CUTOVER_ERR_BAD_RESPONSE: 502,
};

/**
 * A StranglerError that may carry extra JSON fields for the response body
 * (the gate readings of a refused advance, the seconds left to soak).
 */
export class CutoverError extends StranglerError {
  readonly details: Record<string, unknown>;

  constructor(code: CutoverErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(code, message, { status: STATUS[code], ...(cause === undefined ? {} : { cause }) });
    this.name = 'CutoverError';
    this.details = details;
  }
}

export function cutoverError(code: CutoverErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): CutoverError {
  return new CutoverError(code, message, details, cause);
}

/** Quotes user input in a message without letting a long value flood it. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
