import type { DbConfig } from '../lib/db/config.ts';
import { serviceDbConfig } from '../lib/db/service-users.ts';
import { createMonitor, type Monitor } from '../lib/metrics/create-monitor.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { createRouter } from '../lib/http/router.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createCloud } from './cloud/create-cloud.ts';
import { createFleet, type Fleet } from './dobe/fleet.ts';
import { createSchedulerV1, type SchedulerV1 } from './scheduler-v1/create-scheduler-v1.ts';

export interface LegacyStackOptions {
  /** The server (admin credentials, no database). */
  server: DbConfig;
  database: string;
  /** Secret the service users' passwords derive from. */
  secret: string;
  /** Hypervisors to simulate: servers.id 1..n unless `serverIds` is given. */
  serverIds: number[];
  pollIntervalMs?: { min: number; max: number };
  workMs?: number;
  schedulerPollMs?: number;
  agentsPerProcess?: number;
  logger?: Logger;
  onFleetProgress?: (connected: number, total: number) => void;
  /** Ports for the HTTP services (0 = any free port). */
  ports?: { cloud?: number; scheduler?: number; monitor?: number; fleet?: number };
}

export interface LegacyStack {
  urls: { cloud: string; scheduler: string; monitor: string; fleet: string };
  fleet: Fleet;
  scheduler: SchedulerV1;
  monitor: Monitor;
  close(): Promise<void>;
}

/**
 * Starts the 2016 system on a prepared database: Cloud (droplet API with
 * direct DB access), Scheduler V1, the monitor, and one DOBE agent per
 * hypervisor, each with its own MySQL connection. Each service connects
 * as its own MySQL user.
 *
 * @example
 *   const stack = await startLegacyStack({ server, database, secret, serverIds: [1, 2, 3] });
 *   … await stack.close();
 */
export async function startLegacyStack(options: LegacyStackOptions): Promise<LegacyStack> {
  const logger = options.logger ?? silentLogger();
  const as = (user: Parameters<typeof serviceDbConfig>[2]) => serviceDbConfig(options.server, options.database, user, options.secret);
  const started: Array<{ close(): Promise<void> }> = [];
  try {
    const monitor = createMonitor({ db: as('strangler_monitor'), database: options.database, logger, port: options.ports?.monitor ?? 0 });
    const monitorAddress = await monitor.start();
    started.push(monitor);
    const cloud = createCloud({ db: as('cloud'), logger, port: options.ports?.cloud ?? 0 });
    const cloudAddress = await cloud.start();
    started.push(cloud);
    const scheduler = createSchedulerV1({
      db: as('scheduler_v1'),
      logger,
      port: options.ports?.scheduler ?? 0,
      pollIntervalMs: options.schedulerPollMs ?? 1000,
    });
    const schedulerAddress = await scheduler.start();
    started.push(scheduler);
    const fleet = createFleet({
      db: as('dobe'),
      serverIds: options.serverIds,
      pollIntervalMs: options.pollIntervalMs,
      workMs: options.workMs,
      agentsPerProcess: options.agentsPerProcess,
      logger,
      onProgress: options.onFleetProgress,
    });
    started.push(fleet);
    await fleet.start();
    // The fleet's counters (god queries, executions) get their own /metrics, as a hypervisor exporter would.
    const fleetHttp = createHttpService({ name: 'dobe-fleet', router: createRouter(), registry: fleet.registry, logger, port: options.ports?.fleet ?? 0 });
    const fleetAddress = await fleetHttp.start();
    started.push(fleetHttp);
    let closing: Promise<void> | undefined;
    return {
      urls: { cloud: cloudAddress.url, scheduler: schedulerAddress.url ?? '', monitor: monitorAddress.url, fleet: fleetAddress.url },
      fleet,
      scheduler,
      monitor,
      close() {
        // Reverse order: agents stop polling before the services they report to go away.
        closing ??= (async () => {
          for (const service of [...started].reverse()) await service.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const service of [...started].reverse()) await service.close().catch(() => {});
    throw err;
  }
}
