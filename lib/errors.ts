/**
 * An error with a stable, documented code (see runbooks/errors.md) and an
 * optional cause. Every module throws these instead of bare Errors so that
 * callers, HTTP layers and operators can act on `code` without parsing text.
 *
 * @example
 *   throw new StranglerError('DB_ERR_NO_SERVER', 'no MySQL server found', { cause: err });
 */
export class StranglerError extends Error {
  readonly code: string;
  /** HTTP status an HTTP layer should answer with when this error escapes a handler. */
  readonly status: number;

  constructor(code: string, message: string, options: { cause?: unknown; status?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StranglerError';
    this.code = code;
    this.status = options.status ?? 500;
  }
}

/** Names the option and the bad value, as every service's start-up validation must. */
export function invalidOption(option: string, value: unknown, expected: string): StranglerError {
  return new StranglerError(
    'CONFIG_ERR_INVALID_OPTION',
    `option "${option}" must be ${expected}, got ${JSON.stringify(value)}`,
  );
}
