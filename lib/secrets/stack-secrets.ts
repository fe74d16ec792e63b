import { join } from 'node:path';
import { SERVICE_USERS, type DbPasswords, type ServiceUser } from '../db/service-users.ts';
import { randomSecret, readOrCreateSecretFile, secretsDir, secretsError, writeSecretFile } from './secrets-file.ts';

/**
 * The stack's database secrets: one random MySQL password per service user,
 * not derived from anything. Only the composition root (the `strangler`
 * CLI, the demo, the chaos run) reads this file; each service is handed its
 * own password in its own MySQL URL and nothing else. The hypervisor token
 * keys live in a file of their own (lib/auth/hypervisor-keys.ts).
 */
export interface StackSecrets {
  version: 1;
  db: DbPasswords;
}

export interface LoadedStackSecrets {
  secrets: StackSecrets;
  /** Where they are kept (the CLI says so). */
  path: string;
  /** True when this call made the file. */
  created: boolean;
}

/** STRANGLER_SECRETS_FILE, else `stack-secrets.json` in the secrets folder (lib/secrets/secrets-file.ts). */
export function stackSecretsPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.STRANGLER_SECRETS_FILE || join(secretsDir(env), 'stack-secrets.json');
}

function generate(): StackSecrets {
  return { version: 1, db: Object.fromEntries(SERVICE_USERS.map((u) => [u, randomSecret()])) as DbPasswords };
}

function parse(raw: unknown, path: string): StackSecrets {
  const o = raw as { version?: unknown; db?: Record<string, unknown> };
  if (typeof o !== 'object' || o === null || o.version !== 1 || typeof o.db !== 'object' || o.db === null) {
    throw secretsError(`${path} is not a stack secrets file ({"version":1,"db":{user: password}})`);
  }
  for (const [user, password] of Object.entries(o.db)) {
    if (typeof password !== 'string' || password.length < 16) throw secretsError(`${path}: db.${user} must be a password of at least 16 characters`);
  }
  return o as StackSecrets;
}

/**
 * The stack's secrets, made on first use (mode 0600). A user added to the
 * code since the file was made gets a random password, written back.
 *
 * @example
 *   const { secrets, path } = loadStackSecrets(process.env);
 *   serviceDbConfig(server, database, 'cloud', secrets.db);
 */
export function loadStackSecrets(env: NodeJS.ProcessEnv = process.env): LoadedStackSecrets {
  const path = stackSecretsPath(env);
  const { value, created } = readOrCreateSecretFile(path, generate, parse);
  const missing = SERVICE_USERS.filter((u) => !value.db[u]);
  if (missing.length > 0) {
    const db = { ...value.db, ...Object.fromEntries(missing.map((u) => [u, randomSecret()])) } as DbPasswords;
    writeSecretFile(path, { ...value, db });
    return { secrets: { ...value, db }, path, created };
  }
  return { secrets: value, path, created };
}

/**
 * A new random password for one service user, written to the file; the
 * caller ALTERs the user (strangler secrets rotate-db-password does both).
 */
export function rotateDbPassword(env: NodeJS.ProcessEnv, user: ServiceUser): LoadedStackSecrets {
  const { secrets, path } = loadStackSecrets(env);
  const next: StackSecrets = { ...secrets, db: { ...secrets.db, [user]: randomSecret() } };
  writeSecretFile(path, next);
  return { secrets: next, path, created: false };
}
