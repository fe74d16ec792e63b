import { randomBytes } from 'node:crypto';
import { formatMysqlUrl, type DbConfig } from '../../lib/db/config.ts';
import { SERVICE_GRANTS } from '../../lib/db/service-users.ts';
import { createHarpoon, type Harpoon, type HarpoonOptions } from '../../harpoon/create-harpoon.ts';
import type { TestDatabase } from './database.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';

export const HARPOON_TOKEN = 'test-harpoon-service-token-0001';
export const HARPOON_TOKENS = { tests: HARPOON_TOKEN };

/**
 * A MySQL user of its own with exactly a service's grants (Harpoon's by default), so the statements
 * one test sends can be counted by the server (USER_STATISTICS is per user,
 * and other test files use `harpoon` at the same time).
 */
export async function createCountedUser(
  t: TestDatabase,
  service: keyof typeof SERVICE_GRANTS = 'harpoon',
): Promise<{ db: DbConfig; user: string; drop(): Promise<void> }> {
  const user = `${service === 'harpoon' ? 'hp' : service.slice(0, 6)}_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await t.db.raw(`CREATE USER ?@'%' IDENTIFIED BY ?`, [user, password]);
  for (const [table, privileges] of Object.entries(SERVICE_GRANTS[service])) {
    await t.db.raw(`GRANT ${privileges.join(', ')} ON ??.?? TO ?@'%'`, [t.name, table, user]);
  }
  return {
    user,
    db: { ...t.service(service), user, password },
    drop: async () => void (await t.db.raw(`DROP USER IF EXISTS ?@'%'`, [user])),
  };
}

/** Statements a user has run, as the server counts them. */
export async function userStatements(t: TestDatabase, user: string): Promise<{ select: number; update: number; other: number }> {
  const [rows] = (await t.db.raw(
    'SELECT SELECT_COMMANDS AS s, UPDATE_COMMANDS AS u, OTHER_COMMANDS AS o FROM information_schema.USER_STATISTICS WHERE USER = ?',
    [user],
  )) as [Array<{ s: number; u: number; o: number }>];
  const r = rows[0];
  return { select: Number(r?.s ?? 0), update: Number(r?.u ?? 0), other: Number(r?.o ?? 0) };
}

export async function startHarpoon(db: DbConfig, options: Partial<HarpoonOptions> = {}): Promise<{ harpoon: Harpoon; url: string }> {
  const harpoon = createHarpoon({ db, tokens: HARPOON_TOKENS, port: 0, ...options });
  const { url } = await harpoon.start();
  return { harpoon, url };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  json: any;
}

/** One call to Harpoon with the test service token (or `token`). Bodies that are strings are sent as they are. */
export async function call(url: string, method: string, path: string, body?: unknown, token: string | null = HARPOON_TOKEN): Promise<JsonResponse> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: kept as text for the assertion message
  }
  return { status: res.status, headers: res.headers, json };
}

export type HarpoonProcess = ServiceProcess;

/** Runs `node --import tsx harpoon/main.ts` as a real child process and waits until it answers /readyz. */
export function startHarpoonProcess(options: { db: DbConfig; port: number; peers?: string[]; replica?: string; waitReady?: boolean }): Promise<HarpoonProcess> {
  return startServiceProcess(
    'harpoon/main.ts',
    {
      HARPOON_MYSQL_URL: formatMysqlUrl(options.db),
      HARPOON_TOKENS: `tests=${HARPOON_TOKEN}`,
      HARPOON_PEERS: (options.peers ?? []).join(','),
      HARPOON_REPLICA: options.replica ?? `p${options.port}`,
    },
    options.port,
  );
}
