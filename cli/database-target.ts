import { parseMysqlUrl, type DbConfig } from '../lib/db/config.ts';
import { provisionServer } from '../lib/db/provision.ts';
import type { Logger } from '../lib/logger.ts';
import type { DbPasswords } from '../lib/db/service-users.ts';
import { loadStackSecrets } from '../lib/secrets/stack-secrets.ts';

export interface DatabaseTarget {
  /** Admin credentials on the server, no database selected. */
  server: DbConfig;
  database: string;
  /** Each service user's MySQL password (lib/secrets/stack-secrets.ts). */
  passwords: DbPasswords;
  /** Where they are kept. */
  secretsPath: string;
  maxConnections: number;
  release(): Promise<void>;
}

/**
 * The database a verb that works on lasting state (`db`, `fleet`) acts on:
 * MYSQL_URL (its path names the database) or the server on 127.0.0.1:3306,
 * database `--database` (default `strangler`). A throwaway server would
 * vanish with the command, so these verbs never start one.
 */
export async function resolveDatabaseTarget(options: {
  env: NodeJS.ProcessEnv;
  database?: string;
  needConnections: number;
  logger: Logger;
}): Promise<DatabaseTarget> {
  const fromUrl = options.env.MYSQL_URL ? parseMysqlUrl(options.env.MYSQL_URL).database : undefined;
  const database = options.database ?? fromUrl ?? 'strangler';
  const secrets = loadStackSecrets(options.env);
  const server = await provisionServer({ env: options.env, logger: options.logger, needConnections: options.needConnections, allowStart: false });
  return {
    server: server.admin,
    database,
    passwords: secrets.secrets.db,
    secretsPath: secrets.path,
    maxConnections: server.maxConnections,
    release: () => server.release(),
  };
}
