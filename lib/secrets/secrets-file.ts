import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { StranglerError } from '../errors.ts';

/**
 * A file of secrets only its owner can read (mode 0600 in a 0700 folder),
 * made with random values the first time anyone asks for it, and read by
 * every later run, so concurrent runs on one machine agree without any
 * value being derivable from the repository. Two files use this: the stack
 * secrets (lib/secrets/stack-secrets.ts: a MySQL password per service user)
 * and the hypervisor key ring (lib/auth/hypervisor-keys.ts): one purpose
 * each, so a process that verifies hypervisor tokens holds no password.
 */

/** The folder both files live in: STRANGLER_SECRETS_DIR, else $XDG_CONFIG_HOME/strangler, else ~/.config/strangler. */
export function secretsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRANGLER_SECRETS_DIR) return env.STRANGLER_SECRETS_DIR;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'strangler');
}

/** A fresh random secret: 24 bytes, base64url (32 characters, fits a MySQL password). */
export function randomSecret(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Reads `path` (refusing a file others can read), or creates it with
 * `make()` when missing. Creation is exclusive (O_EXCL), so two runs
 * starting at once end up with the same file: the loser reads the winner's.
 *
 * @example
 *   const { value, created } = readOrCreateSecretFile(path, () => ({ db: … }), parse);
 */
export function readOrCreateSecretFile<T>(path: string, make: () => T, parse: (raw: unknown, path: string) => T): { value: T; created: boolean } {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number | undefined;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw secretsError(`cannot create ${path}: ${(err as Error).message}`, err);
  }
  if (fd !== undefined) {
    const value = make();
    try {
      writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    } finally {
      closeSync(fd);
    }
    return { value, created: true };
  }
  return { value: readSecretFile(path, parse), created: false };
}

/** Reads and parses a secrets file; refuses one that group or others may read. */
export function readSecretFile<T>(path: string, parse: (raw: unknown, path: string) => T): T {
  // A file being written by the creator may be empty for an instant: read again briefly.
  for (let attempt = 0; ; attempt++) {
    const stat = statSync(path);
    if ((stat.mode & 0o077) !== 0) {
      throw secretsError(`${path} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    }
    const text = readFileSync(path, 'utf8');
    if (text.trim() === '' && attempt < 50) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      continue;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw secretsError(`${path} is not JSON; restore it from a backup or remove it to start over with new secrets`, err);
    }
    return parse(raw, path);
  }
}

/** Replaces a secrets file atomically (write a 0600 temp file, rename over), for rotation. */
export function writeSecretFile(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function secretsError(message: string, cause?: unknown): StranglerError {
  return new StranglerError('SECRETS_ERR_FILE', message, cause === undefined ? {} : { cause });
}
