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

/** A CONFIG_ERR_INVALID_OPTION that also carries its parts, so a config file's checker can restate it as `<path>: …`. */
export class InvalidOptionError extends StranglerError {
  constructor(
    readonly option: string,
    readonly value: unknown,
    readonly expected: string,
  ) {
    super('CONFIG_ERR_INVALID_OPTION', `option "${option}" must be ${expected}, got ${JSON.stringify(value)}`);
  }
}

/**
 * Quotes a value someone sent inside an error message, without letting a long one flood it.
 *
 * @example
 *   throw cloudError('CLOUD_ERR_VALIDATION', `size: unknown size ${quote(body.size)}`);
 */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

/** Names the option and the bad value, as every service's start-up validation must. */
export function invalidOption(option: string, value: unknown, expected: string): InvalidOptionError {
  return new InvalidOptionError(option, value, expected);
}

/** One row of a service's error table: the HTTP status it answers with, and what the code means to whoever reads it. */
export interface ErrorSpec {
  readonly status: number;
  /** The meaning, for operators; runbooks/errors.md says the same (test/runbooks/errors.test.ts checks every code is there). */
  readonly message: string;
}

export type ErrorSpecs = Readonly<Record<string, ErrorSpec>>;

/** A service's table of codes, with the constructor whose status comes from it, so the two never disagree. */
export interface ErrorTable<T extends ErrorSpecs> {
  readonly codes: T;
  status(code: keyof T & string): number;
  error(code: keyof T & string, message: string, cause?: unknown): StranglerError;
}

/** The codes of a table made by defineErrors. */
export type ErrorCode<T extends ErrorTable<ErrorSpecs>> = keyof T['codes'] & string;

/**
 * Defines a service's error codes in the one shape every service uses:
 * code → { status, message }. Each service keeps its own table (harpoon/errors.ts,
 * proxy/errors.ts, …); every code is listed in runbooks/errors.md.
 *
 * @example
 *   export const WIDGET_ERRORS = defineErrors({
 *     WIDGET_ERR_NOT_FOUND: { status: 404, message: 'no such widget.' },
 *   });
 *   throw WIDGET_ERRORS.error('WIDGET_ERR_NOT_FOUND', `widget ${id} does not exist`);
 */
export function defineErrors<const T extends ErrorSpecs>(codes: T): ErrorTable<T> {
  return Object.freeze({
    codes,
    status: (code: keyof T & string) => codes[code]!.status,
    error(code: keyof T & string, message: string, cause?: unknown): StranglerError {
      return new StranglerError(code, message, { status: codes[code]!.status, ...(cause === undefined ? {} : { cause }) });
    },
  });
}
