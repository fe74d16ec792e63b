import { StranglerError } from '../errors.ts';

/** Where and as whom to connect. `database` may be absent for server-level work. */
export interface DbConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
}

/**
 * Parses `mysql://user:pass@host:port/db` (the MYSQL_URL form).
 *
 * @example
 *   parseMysqlUrl('mysql://root@127.0.0.1:3306/app') // { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'app' }
 */
export function parseMysqlUrl(url: string): DbConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new StranglerError('DB_ERR_BAD_URL', `MYSQL_URL is not a URL (expected mysql://user:pass@host:port/db)`, { cause });
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw new StranglerError('DB_ERR_BAD_URL', `MYSQL_URL must start with mysql://, got ${parsed.protocol}//`);
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 3306,
    user: decodeURIComponent(parsed.username) || 'root',
    password: decodeURIComponent(parsed.password),
    ...(database ? { database } : {}),
  };
}

/** The inverse of parseMysqlUrl; the password is included, so never log the result. */
export function formatMysqlUrl(config: DbConfig): string {
  const auth = config.password
    ? `${encodeURIComponent(config.user)}:${encodeURIComponent(config.password)}`
    : encodeURIComponent(config.user);
  return `mysql://${auth}@${config.host}:${config.port}/${config.database ? encodeURIComponent(config.database) : ''}`;
}

/** A printable description without the password. */
export function describeDb(config: DbConfig): string {
  return `${config.user}@${config.host}:${config.port}${config.database ? '/' + config.database : ''}`;
}

const NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

/** Database names go into DDL as identifiers, so they are checked, not trusted. */
export function assertDatabaseName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new StranglerError('DB_ERR_BAD_NAME', `database name must match ${NAME_RE}, got ${JSON.stringify(name)}`);
  }
  return name;
}
