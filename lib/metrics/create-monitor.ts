import type { Knex } from 'knex';
import { Registry } from 'prom-client';
import type { DbConfig } from '../db/config.ts';
import { createKnex } from '../db/knex.ts';
import { createHttpService } from '../http/service-server.ts';
import { createRouter } from '../http/router.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { collectProcessMetrics } from './default-metrics.ts';
import { registerMysqlCollector } from './mysql-collector.ts';
import type { MysqlSnapshot } from './mysql-snapshot.ts';

export interface MonitorOptions {
  /** The monitor user's settings (PROCESS privilege). */
  db: DbConfig;
  /** Count only connections to this schema. */
  database?: string;
  logger?: Logger;
  registry?: Registry;
  port?: number;
  host?: string;
}

export interface Monitor {
  start(): Promise<{ url: string }>;
  close(): Promise<void>;
  /** The server's own counters now (shared with /metrics scrapes within 500 ms). */
  snapshot(): Promise<MysqlSnapshot>;
  readonly db: Knex;
}

/**
 * The database's point of view as a service: `/metrics` in mysqld_exporter
 * names, read from the server at scrape time over one connection.
 *
 * @example
 *   const monitor = createMonitor({ db: monitorConfig, database, port: 9104 });
 *   const { url } = await monitor.start(); // url + '/metrics'
 */
export function createMonitor(options: MonitorOptions): Monitor {
  const logger = (options.logger ?? silentLogger()).child({ component: 'monitor' });
  const registry = options.registry ?? new Registry();
  collectProcessMetrics(registry);
  const db = createKnex(options.db, { poolMax: 1 });
  const snapshot = registerMysqlCollector(registry, { db, database: options.database });
  const http = createHttpService({
    name: 'monitor',
    router: createRouter(),
    registry,
    logger,
    port: options.port,
    host: options.host,
    ready: async () => db.raw('SELECT 1').then(() => true, () => false),
  });
  let closing: Promise<void> | undefined;
  return {
    db,
    snapshot,
    start: () => http.start(),
    close() {
      closing ??= (async () => {
        await http.close();
        await db.destroy();
      })();
      return closing;
    },
  };
}
