import mysql from 'mysql2/promise';
import { StranglerError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { describeDb, parseMysqlUrl, type DbConfig } from './config.ts';
import { dockerAvailable, startContainerServer } from './container-server.ts';
import { startThrowawayServer, throwawayAvailable, type ServerDeath, type ThreadHandling } from './throwaway-server.ts';

export type DbSource = 'url' | 'found' | 'throwaway' | 'container';

/** A server the run may use, with admin credentials and a way to let go of it. */
export interface ProvisionedServer {
  source: DbSource;
  /** Credentials with the right to create databases and users (no database selected). */
  admin: DbConfig;
  serverVersion: string;
  maxConnections: number;
  /** `@@thread_handling` as the server reports it ('one-thread-per-connection', 'pool-of-threads', …). */
  threadHandling: string;
  /**
   * A pooled MariaDB's `extra_port` (a thread per connection there, no queue behind the pool's other
   * clients): where the migration's control sessions connect when the legacy saturates the pool.
   */
  controlPort?: number;
  /** The server's process id when this run started it (for memory readings). */
  pid?: number;
  /** A throwaway server this run started: resolves if it dies before release() (lib/db/throwaway-server.ts). */
  died?: Promise<ServerDeath>;
  /** Stops what this run started; a server it merely found is left alone. */
  release(): Promise<void>;
}

export interface ProvisionOptions {
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  /** Connections the run will open at its peak (agents, pools, headroom). */
  needConnections: number;
  /** Where to look for an already running server (default 127.0.0.1:3306 as root). */
  found?: DbConfig;
  /**
   * Whether this run may start a server of its own (throwaway or container).
   * Commands whose state must outlive them (db, fleet) pass false.
   */
  allowStart?: boolean;
  /**
   * How a server this run starts itself serves connections (default 'pool-of-threads').
   * 'one-thread-per-connection' is what MySQL 5.6/5.7 Community ran in 2016 (the demo's faithful
   * legacy); a server that is found or named by MYSQL_URL keeps its own, which `threadHandling` reports.
   */
  threadHandling?: ThreadHandling;
}

interface ServerFacts {
  version: string;
  maxConnections: number;
  openFilesLimit: number;
  threadHandling: string;
  controlPort?: number;
}

async function inspect(config: DbConfig): Promise<ServerFacts> {
  const conn = await mysql.createConnection({ ...config, connectTimeout: 2000 });
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      "SELECT VERSION() AS version, @@max_connections AS max_connections, @@open_files_limit AS open_files_limit, @@thread_handling AS thread_handling",
    );
    const row = rows[0]!;
    const threadHandling = String(row.thread_handling);
    // extra_port is MariaDB's (MySQL has no such variable): a server without it answers with an error.
    const extra = threadHandling === 'pool-of-threads' ? await conn.query<mysql.RowDataPacket[]>('SELECT @@extra_port AS extra_port').then(([r]) => Number(r[0]?.extra_port ?? 0), () => 0) : 0;
    return {
      version: String(row.version),
      maxConnections: Number(row.max_connections),
      openFilesLimit: Number(row.open_files_limit),
      threadHandling,
      ...(extra > 0 ? { controlPort: extra } : {}),
    };
  } finally {
    await conn.end();
  }
}

function serverFacts(facts: ServerFacts): Pick<ProvisionedServer, 'serverVersion' | 'maxConnections' | 'threadHandling' | 'controlPort'> {
  return {
    serverVersion: facts.version,
    maxConnections: facts.maxConnections,
    threadHandling: facts.threadHandling,
    ...(facts.controlPort ? { controlPort: facts.controlPort } : {}),
  };
}

function shortfall(facts: ServerFacts, need: number): string | undefined {
  const missing: string[] = [];
  if (facts.maxConnections < need) missing.push(`max_connections=${facts.maxConnections} (needs >= ${need})`);
  if (facts.openFilesLimit < need) missing.push(`open_files_limit=${facts.openFilesLimit} (needs >= ${need})`);
  return missing.length ? missing.join(', ') : undefined;
}

/**
 * Finds or starts a real MySQL-compatible server, in the order the brief
 * fixes: MYSQL_URL; a server on 127.0.0.1:3306; a throwaway mariadbd/mysqld
 * from the system binary; a Testcontainers container where Docker runs;
 * otherwise an error that says how to get one.
 *
 * @example
 *   const server = await provisionServer({ logger, needConnections: 500 });
 *   try { … } finally { await server.release(); }
 */
export async function provisionServer(options: ProvisionOptions): Promise<ProvisionedServer> {
  const env = options.env ?? process.env;
  const log = options.logger;
  const need = options.needConnections;

  if (env.MYSQL_URL) {
    const { database: _ignored, ...admin } = parseMysqlUrl(env.MYSQL_URL);
    const facts = await inspect(admin).catch((cause) => {
      throw new StranglerError('DB_ERR_UNREACHABLE', `MYSQL_URL points at ${describeDb(admin)}, which refused us: ${(cause as Error).message}`, {
        cause,
      });
    });
    const missing = shortfall(facts, need);
    if (missing) {
      throw new StranglerError(
        'DB_ERR_TOO_FEW_CONNECTIONS',
        `the server at MYSQL_URL (${describeDb(admin)}) is too small for this run: ${missing}. ` +
          'Raise these settings on that server, or unset MYSQL_URL to let the tool start a throwaway server.',
      );
    }
    return { source: 'url', admin, ...serverFacts(facts), release: async () => {} };
  }

  const found = options.found ?? { host: '127.0.0.1', port: 3306, user: 'root', password: '' };
  const foundFacts = await inspect(found).catch(() => undefined);
  if (foundFacts) {
    const missing = shortfall(foundFacts, need);
    if (!missing) {
      log.info({ server: describeDb(found) }, 'using the database server found on this machine');
      return {
        source: 'found',
        admin: found,
        ...serverFacts(foundFacts),
        release: async () => {},
      };
    }
    if (options.allowStart !== false) {
      log.warn(
        { server: describeDb(found), missing },
        `found a server at ${describeDb(found)} but it is too small for this run (${missing}); starting a throwaway server instead`,
      );
    }
  }

  const reasons: string[] = [];
  if (options.allowStart === false) {
    throw new StranglerError(
      'DB_ERR_NO_LASTING_SERVER',
      (foundFacts
        ? `the server at ${describeDb(found)} is too small for this command: ${shortfall(foundFacts, need)}. `
        : `no server answered at ${describeDb(found)}. `) +
        'This command keeps its state in the database, so it will not start a throwaway server that vanishes when it exits. ' +
        'Set MYSQL_URL to a server with enough max_connections, raise the limits on the found server (see runbooks/database.md), or use "strangler up".',
    );
  }
  if (throwawayAvailable()) {
    try {
      const server = await startThrowawayServer({
        maxConnections: need,
        logger: log,
        ...(options.threadHandling ? { threadHandling: options.threadHandling } : {}),
      });
      const facts = await inspect(server.config);
      return {
        source: 'throwaway',
        admin: server.config,
        pid: server.pid,
        died: server.died,
        ...serverFacts(facts),
        release: () => server.stop(),
      };
    } catch (err) {
      reasons.push(`throwaway server: ${(err as Error).message}`);
      log.warn({ err }, 'could not start a throwaway server');
    }
  } else {
    reasons.push('throwaway server: neither mariadbd nor mysqld is installed');
  }

  if (dockerAvailable(env)) {
    try {
      const server = await startContainerServer({ maxConnections: need, logger: log });
      const facts = await inspect(server.config);
      return {
        source: 'container',
        admin: server.config,
        ...serverFacts(facts),
        release: () => server.stop(),
      };
    } catch (err) {
      reasons.push(`container: ${(err as Error).message}`);
    }
  } else {
    reasons.push('container: no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock)');
  }

  throw new StranglerError(
    'DB_ERR_NO_SERVER',
    'no MySQL-compatible server could be found or started. Do one of: set MYSQL_URL=mysql://root:pass@host:3306/; ' +
      'run MariaDB/MySQL on 127.0.0.1:3306 with root and an empty password; install mariadb-server so a throwaway ' +
      `server can be started; or run Docker. Tried: ${reasons.join('; ')}`,
  );
}
