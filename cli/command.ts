import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { StranglerError } from '../lib/errors.ts';

/** What a verb may touch of the outside world; tests pass their own. */
export interface CommandIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /** Resolves when the user asks the process to stop (SIGINT/SIGTERM). */
  signal: AbortSignal;
}

/**
 * One CLI verb (or group of sub-verbs). `run` returns the exit code:
 * 0 success, 1 the operation failed, 2 bad usage, 3 a precondition
 * (database, gate) was not met.
 */
export interface Command {
  name: string;
  summary: string;
  /** Full `--help` text, including the options and an example. */
  help: string;
  run(argv: string[], io: CommandIO): Promise<number>;
}

export const EXIT = { ok: 0, failed: 1, usage: 2, precondition: 3 } as const;

export class UsageError extends Error {
  readonly code = 'CLI_ERR_USAGE';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * parseArgs with `--help` and `--json` always present and unknown options
 * rejected as a UsageError (exit 2) instead of a stack trace.
 */
export function parseCommandArgs<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses an integer option, naming the option in the error. */
export function intOption(name: string, value: string | undefined, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got "${value}"`);
  }
  return n;
}

/** Checks a --database value before anything connects, so a bad name is a usage error (exit 2). */
export function databaseOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(value)) throw new UsageError(`--database must be lower-case letters, digits and _ (starting with a letter), got "${value}"`);
  return value;
}

export function writeJson(io: CommandIO, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Resolves on Ctrl-C/SIGTERM, or after `seconds` when given; calls `tick` every second meanwhile. */
export function waitForStop(signal: AbortSignal, seconds?: number, tick?: () => void): Promise<void> {
  return new Promise((resolve) => {
    const ticker = tick ? setInterval(tick, 1000) : undefined;
    const finish = () => {
      clearInterval(ticker);
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const timer = seconds ? setTimeout(finish, seconds * 1000) : undefined;
    if (signal.aborted) finish();
    else signal.addEventListener('abort', finish);
  });
}

/**
 * Prints a config or plan file's problems, one JSON path per line (or as
 * JSON), and returns exit 2: a bad file is bad usage, fixed by editing it.
 */
export function reportInvalidFile(io: CommandIO, json: boolean, what: string, file: string, err: StranglerError & { details?: { errors?: string[] } }): number {
  const errors = err.details?.errors ?? [err.message];
  if (json) writeJson(io, { valid: false, code: err.code, file, errors });
  else io.stderr.write(`strangler: ${err.code}: ${file} is not a valid ${what}:\n${errors.map((l) => `  ${l}\n`).join('')}`);
  return EXIT.usage;
}
