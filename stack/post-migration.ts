import { createCloud } from '../cloud/create-cloud.ts';
import { createFleet, type Fleet } from '../dobe/fleet.ts';
import { addHostMetricsRoutes, hostMetricsUrl } from '../dobe/host-metrics.ts';
import { createHarpoonReplicas } from '../harpoon/replicas.ts';
import type { DbConfig } from '../lib/db/config.ts';
import { serviceDbConfig, type DbPasswords } from '../lib/db/service-users.ts';
import { invalidOption } from '../lib/errors.ts';
import { createRouter } from '../lib/http/router.ts';
import { createHttpService } from '../lib/http/service-server.ts';
import { silentLogger, type Logger } from '../lib/logger.ts';
import { createRouterSupervisor } from '../router/supervisor.ts';
import { createSchedulerV2 } from '../scheduler/create-scheduler-v2.ts';
import { loadHypervisorKeys, type HypervisorKeyRing } from '../lib/auth/hypervisor-keys.ts';
import { generateHarpoonTokens, scopedHarpoonTokens } from './harpoon-tokens.ts';

export interface PostMigrationStackOptions {
  /** The server (admin credentials, no database). */
  server: DbConfig;
  database: string;
  /** Each service user's MySQL password (lib/secrets/stack-secrets.ts): each service is handed its own only. */
  passwords: DbPasswords;
  /** The hypervisor token keys (lib/auth/hypervisor-keys.ts), or their file: routers check, the fleet signs. */
  hypervisorKeys: HypervisorKeyRing | { file: string };
  /** Hypervisors (servers.id) to run agents for. */
  serverIds: number[];
  /** Region slugs of those hypervisors: one Event Router each. */
  regions: string[];
  /** Simulated time a hypervisor spends on one event (default 20 ms). */
  workMs?: number;
  /** Harpoon replica processes (default 2). */
  harpoonReplicas?: number;
  /** Scheduler V2 replicas, in this process (default 2). */
  schedulerReplicas?: number;
  logger?: Logger;
}

export interface PostMigrationStack {
  urls: { cloud: string; harpoon: string[]; routers: Record<string, string>; fleet: string; schedulers: string[] };
  fleet: Fleet;
  close(): Promise<void>;
}

/**
 * The system after the migration, composed without one line of `legacy/`:
 * Harpoon is the only service on `events`; Cloud writes through its outbox
 * to Harpoon and reads actions from it; every agent holds a stream to its
 * region's Event Router, which reads Harpoon; Scheduler V2 replicas place
 * from Harpoon's feed and the hypervisors' metrics. No Scheduler V1, no god
 * query, no direct event writes, no MySQL-polling router source. It expects
 * a database whose cutover is at `full` for every feature, lockdown applied
 * (npm run check:strangled runs it so, in a copy of the tree without legacy/).
 *
 * @example
 *   const stack = await startPostMigrationStack({ server, database, passwords: secrets.db, hypervisorKeys: { file }, serverIds: [1, 2], regions: ['nyc1'] });
 *   // POST `${stack.urls.cloud}/v2/droplets` … the event is placed, delivered and done
 *   await stack.close();
 */
export async function startPostMigrationStack(options: PostMigrationStackOptions): Promise<PostMigrationStack> {
  if (!Array.isArray(options.serverIds) || options.serverIds.length === 0) throw invalidOption('serverIds', options.serverIds, 'a non-empty list of servers.id');
  if (!Array.isArray(options.regions) || options.regions.length === 0) throw invalidOption('regions', options.regions, 'a non-empty list of region slugs');
  const logger = options.logger ?? silentLogger();
  const as = (user: Parameters<typeof serviceDbConfig>[2]) => serviceDbConfig(options.server, options.database, user, options.passwords);
  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    // Reverse order: agents stop before the services they report to go away.
    for (const service of [...started].reverse()) await service.close().catch((err: Error) => logger.warn({ err: err.message }, 'close failed'));
  };
  try {
    const tokens = generateHarpoonTokens(options.regions);
    const harpoon = createHarpoonReplicas({ db: as('harpoon'), tokens: scopedHarpoonTokens(tokens), replicas: options.harpoonReplicas ?? 2, logger });
    started.push(harpoon);
    await harpoon.start();
    const harpoonUrls = harpoon.urls();

    const cloud = createCloud({ db: as('cloud'), harpoon: { urls: harpoonUrls, token: tokens.cloud }, logger, port: 0 });
    const cloudAddress = await cloud.start();
    started.push(cloud);

    const routers = createRouterSupervisor({
      regions: options.regions,
      db: as('event_router'),
      hypervisorKeys: options.hypervisorKeys,
      harpoon: { urls: harpoonUrls, token: tokens.routers },
      logger,
    });
    started.push(routers);
    const routerUrls = Object.fromEntries((await routers.start()).map((r) => [r.region, r.url]));

    const fleet = createFleet({
      db: as('dobe'),
      serverIds: options.serverIds,
      routerUrl: routerUrls,
      hypervisorKeys: 'file' in options.hypervisorKeys ? loadHypervisorKeys(options.hypervisorKeys.file) : options.hypervisorKeys,
      ...(options.workMs !== undefined ? { workMs: options.workMs } : {}),
      logger,
    });
    started.push(fleet);
    await fleet.start();
    const fleetRouter = createRouter();
    addHostMetricsRoutes(fleetRouter, fleet.hostMetrics);
    const fleetHttp = createHttpService({ name: 'dobe-fleet', router: fleetRouter, registry: fleet.registry, logger, port: 0 });
    const fleetAddress = await fleetHttp.start();
    started.push(fleetHttp);

    const metricsEndpoints = fleet.hostMetrics.regions().map((region) => ({ name: region, url: hostMetricsUrl(fleetAddress.url, region) }));
    const schedulers: string[] = [];
    for (let i = 0; i < (options.schedulerReplicas ?? 2); i++) {
      const replica = createSchedulerV2({
        db: as('scheduler_v2'),
        metricsEndpoints,
        followCutover: true,
        harpoon: { urls: harpoonUrls, token: tokens.scheduler },
        replicaId: `v2-${process.pid}-${i + 1}`,
        logger,
        port: 0,
      });
      started.push(replica);
      const { url } = await replica.start();
      schedulers.push(url!);
    }

    let closing: Promise<void> | undefined;
    return {
      urls: { cloud: cloudAddress.url, harpoon: harpoonUrls, routers: routerUrls, fleet: fleetAddress.url, schedulers },
      fleet,
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
