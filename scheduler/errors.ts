import { StranglerError } from '../lib/errors.ts';

/**
 * Every code Scheduler V2 reports, with its HTTP status and meaning.
 * scheduler/README.md lists the same table for operators.
 */
export const SCHEDULER_ERROR_CODES = {
  SCHEDULER_ERR_VALIDATION: [
    422,
    'the /explain body is well-formed JSON but a field is unknown, missing, of the wrong type or out of range; the message names it.',
  ],
  SCHEDULER_ERR_UNKNOWN_REGION: [422, 'the region (slug or id) names no region; the message lists the valid slugs.'],
  SCHEDULER_ERR_UNKNOWN_SIZE: [422, 'the size slug names no size; the message lists the valid ones.'],
  SCHEDULER_ERR_NOT_FOUND: [404, 'no stored decision for that event id.'],
  SCHEDULER_ERR_NOT_READY: [503, 'the replica has not loaded its host inventory yet (database unreachable at start-up); retry.'],
  SCHEDULER_ERR_INTERNAL: [500, 'an unexpected failure (start-up of scheduler/main.ts); the log line carries the message.'],
  SCHEDULER_ERR_START: [500, 'a replica process (scheduler/process.ts) exited or did not answer /readyz in time at start-up; the message has the end of its output.'],
  SCHEDULER_ERR_SCRAPE_FAILED: [502, 'a host-metrics endpoint did not answer 200 within the scrape timeout; its hosts age until they count as "metrics stale".'],
} as const;

export type SchedulerErrorCode = keyof typeof SCHEDULER_ERROR_CODES;

/** A StranglerError whose status comes from the table, so the two never disagree. */
export function schedulerError(code: SchedulerErrorCode, message: string, cause?: unknown): StranglerError {
  return new StranglerError(code, message, { status: SCHEDULER_ERROR_CODES[code][0], ...(cause === undefined ? {} : { cause }) });
}
