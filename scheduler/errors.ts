import { defineErrors, StranglerError, type ErrorCode } from '../lib/errors.ts';

/**
 * Every code Scheduler V2 reports, with its HTTP status and meaning.
 * scheduler/README.md lists the same table for operators.
 */
export const SCHEDULER_ERRORS = defineErrors({
  SCHEDULER_ERR_VALIDATION: { status: 422, message: 'the /explain body is well-formed JSON but a field is unknown, missing, of the wrong type or out of range; the message names it.' },
  SCHEDULER_ERR_UNKNOWN_REGION: { status: 422, message: 'the region (slug or id) names no region; the message lists the valid slugs.' },
  SCHEDULER_ERR_UNKNOWN_SIZE: { status: 422, message: 'the size slug names no size; the message lists the valid ones.' },
  SCHEDULER_ERR_UNAUTHORIZED: { status: 401, message: 'POST /explain or GET /decisions without a valid admin token (`Authorization: Bearer <token>`), or one that has expired; a replica started without `tokens` refuses every one. Nothing was read.' },
  SCHEDULER_ERR_FORBIDDEN: { status: 403, message: 'the admin token is valid but lacks the scope: `explain` for POST /explain, `placements` for GET /decisions/:event_id. Nothing was read.' },
  SCHEDULER_ERR_EXPLAIN_BUSY: { status: 429, message: 'the replica already answers its limit of /explain requests at once (explainConcurrency); placement is not slowed by them. Retry after the Retry-After seconds.' },
  SCHEDULER_ERR_NOT_FOUND: { status: 404, message: 'no stored decision for that event id.' },
  SCHEDULER_ERR_NOT_READY: { status: 503, message: 'the replica has not loaded its host inventory yet (database unreachable at start-up); retry.' },
  SCHEDULER_ERR_INTERNAL: { status: 500, message: 'an unexpected failure (start-up of scheduler/main.ts); the log line carries the message.' },
  SCHEDULER_ERR_START: { status: 500, message: 'a replica process (scheduler/process.ts) exited or did not answer /readyz in time at start-up; the message has the end of its output.' },
  SCHEDULER_ERR_SCRAPE_FAILED: { status: 502, message: 'a host-metrics endpoint did not answer 200 within the scrape timeout; its hosts age until they count as "metrics stale".' },
});

export type SchedulerErrorCode = ErrorCode<typeof SCHEDULER_ERRORS>;

/** A StranglerError whose status comes from the table. */
export const schedulerError: (code: SchedulerErrorCode, message: string, cause?: unknown) => StranglerError = SCHEDULER_ERRORS.error;
