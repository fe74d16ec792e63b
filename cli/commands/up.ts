import { randomBytes } from 'node:crypto';
import { harpoonPlanFeatures } from '../../demo/harpoon-stage.ts';
import { demoPlan } from '../../demo/scheduler-v2-stage.ts';
import { validatePlan } from '../../proxy/cutover/plan.ts';
import { writeScrapeTargets } from '../../lib/metrics/scrape-targets.ts';
import { prepareDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { provisionServer } from '../../lib/db/provision.ts';
import { generateSeed } from '../../stack/seed/generate.ts';
import { insertSeed } from '../../stack/seed/insert.ts';
import { startLegacyStack } from '../../stack/stack.ts';
import { createProgress } from '../../demo/progress.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, databaseOption, intOption, parseCommandArgs, waitForStop, writeJson, type Command } from '../command.ts';
import { loadStackSecrets } from '../../lib/secrets/stack-secrets.ts';
import { hypervisorKeysPath, loadHypervisorKeys } from '../../lib/auth/hypervisor-keys.ts';

const HELP = `Usage: strangler up [options]

Starts the whole stack in its legacy state on this machine and keeps it
running until Ctrl-C: a database (found or throwaway), a migrated and seeded
schema, Cloud, Scheduler V1, the monitor (MySQL metrics), one DOBE agent per
hypervisor, one Event Router per region, three Scheduler V2 replicas, two
Harpoon replicas, the strangler proxy (in front of the agents' streams and
the public API), and the proxy's admin port with the cutover API (what
\`strangler cutover\` talks to by default) and the live dashboard. Every
feature starts at step 0 (legacy); the plan moves event-delivery, scheduling,
event-writes, event-reads and lockdown with 10 s soaks.
Prints the URLs to use, and writes Prometheus file_sd targets for
dashboards/prometheus.yml.

Secrets: on first start, random MySQL passwords (one per service user) and a
hypervisor token key ring are made in files only you can read (mode 0600) in
STRANGLER_SECRETS_DIR, else ~/.config/strangler; the output says where. Each
service process gets its own password and nothing of your environment
(runbooks/security.md).

Options:
  --hypervisors N    Simulated hypervisors (default 200)
  --regions R        Regions (default 3)
  --seed K           Seed number (default 1)
  --database NAME    Database name (default: a fresh strangler_up_<random>)
  --port P           Admin port: cutover API and /dashboard (default 9400; 0 = any)
  --monitor-port P   MySQL monitor /metrics (default 9104, mysqld_exporter's; 0 = any)
  --cloud-port P     Cloud API port (default 9401; 0 = any)
  --targets-dir DIR  Prometheus file_sd targets (default out/prometheus-targets)
  --seconds S        Stop after S seconds (default: until Ctrl-C)
  --json             Print the URLs and settings as one JSON object
  -h, --help         This text

Example:
  strangler up --hypervisors 1000 --regions 5
`;

export const command: Command = {
  name: 'up',
  summary: 'start the stack in its legacy state and print the dashboard URL',
  help: HELP,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      hypervisors: { type: 'string' },
      regions: { type: 'string' },
      seed: { type: 'string' },
      database: { type: 'string' },
      port: { type: 'string' },
      'monitor-port': { type: 'string' },
      'cloud-port': { type: 'string' },
      'targets-dir': { type: 'string' },
      seconds: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    const hypervisors = intOption('hypervisors', values.hypervisors, 200, 1);
    const regions = intOption('regions', values.regions, 3, 1);
    const seedNumber = intOption('seed', values.seed, 1, 0);
    const seconds = values.seconds === undefined ? undefined : intOption('seconds', values.seconds, 1, 1);
    const requestedDatabase = databaseOption(values.database);
    const logger = cliLogger(io.env);
    const progress = createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, { quiet: values.json });
    // Random secrets, made on first start and kept where only you can read them (runbooks/security.md).
    const stackSecrets = loadStackSecrets(io.env);
    const keysPath = hypervisorKeysPath(io.env);
    loadHypervisorKeys(keysPath);
    progress.log(`secrets: ${stackSecrets.path}${stackSecrets.created ? ' (made now)' : ''}; hypervisor token keys: ${keysPath} (mode 0600)`);
    // The cutover admin token: yours (STRANGLER_ADMIN_TOKEN), or one made for this run and shown once here, never on the dashboard.
    const adminToken = io.env.STRANGLER_ADMIN_TOKEN ?? randomBytes(18).toString('base64url');
    const tokenHint = io.env.STRANGLER_ADMIN_TOKEN ? '' : `STRANGLER_ADMIN_TOKEN=${adminToken} `;
    const server = await provisionServer({ env: io.env, logger, needConnections: hypervisors + 150 });
    progress.log(`database: ${server.source} server ${server.admin.host}:${server.admin.port} (${server.serverVersion}${server.controlPort ? `, control sessions on extra_port ${server.controlPort}` : ''})`);
    try {
      const database = requestedDatabase ?? uniqueDatabaseName('strangler_up');
      const config = await prepareDatabase(server.admin, database, stackSecrets.secrets.db);
      const db = createKnex(config, { poolMax: 1 });
      const seed = generateSeed({ hypervisors, regions, seed: seedNumber });
      let serverIds: number[];
      try {
        const [[{ n }]] = (await db.raw('SELECT COUNT(*) AS n FROM servers')) as [[{ n: number }]];
        if (Number(n) === 0) await insertSeed(db, seed, (table, rows) => progress.update(`seeding ${table}: ${rows} rows`));
        else progress.log(`database ${database} already has ${n} servers: running their agents, not seeding`);
        // An existing database decides the fleet, not --hypervisors.
        serverIds = (await db('servers').orderBy('id').limit(hypervisors).select('id')).map((r: { id: number }) => r.id);
      } finally {
        await db.destroy();
      }
      const regionSlugs = seed.regions.map((r) => r.slug);
      const basePlan = demoPlan(regionSlugs, 10);
      const stack = await startLegacyStack({
        server: server.admin,
        ...(server.controlPort ? { controlPort: server.controlPort } : {}),
        database,
        passwords: stackSecrets.secrets.db,
        hypervisorKeys: { file: keysPath },
        serverIds,
        logger,
        ports: {
          admin: intOption('port', values.port, 9400, 0, 65535),
          monitor: intOption('monitor-port', values['monitor-port'], 9104, 0, 65535),
          cloud: intOption('cloud-port', values['cloud-port'], 9401, 0, 65535),
        },
        // Every feature of the migration, at 10 s soaks: the operator drives it with `strangler cutover`.
        eventRouter: { regions: regionSlugs, plan: validatePlan({ ...basePlan, features: { ...basePlan.features, ...harpoonPlanFeatures(10) } }), adminToken, dashboard: {} },
        schedulerV2: { replicas: 3 },
        harpoon: { replicas: 2 },
        onFleetProgress: (connected, total) => progress.update(`fleet: ${connected}/${total} agents connected`),
      });
      try {
        const er = stack.eventRouter!;
        // V2 replicas stay idle (following scheduling) until the operator advances it.
        const v2 = await stack.schedulerV2!.start();
        const harpoonUrls = stack.harpoon!.urls;
        const targetsDir = values['targets-dir'] ?? 'out/prometheus-targets';
        await writeScrapeTargets(targetsDir, [
          { job: 'monitor', url: stack.urls.monitor },
          { job: 'cloud', url: stack.urls.cloud },
          { job: 'fleet', url: stack.urls.fleet },
          ...(stack.urls.scheduler ? [{ job: 'scheduler-v1' as const, url: stack.urls.scheduler }] : []),
          { job: 'proxy-admin', url: er.adminUrl },
          ...er.routers.routers().map((r) => ({ job: 'event-router' as const, url: r.url, labels: { region: r.region } })),
          ...v2.urls.map((url) => ({ job: 'scheduler-v2' as const, url })),
          ...harpoonUrls.map((url) => ({ job: 'harpoon' as const, url })),
        ]);
        const info = {
          dashboard: er.dashboardUrl,
          admin: er.adminUrl,
          proxy: er.proxyUrl,
          monitor_metrics: `${stack.urls.monitor}/metrics`,
          prometheus_targets: targetsDir,
          fleet_metrics: `${stack.urls.fleet}/metrics`,
          cloud: stack.urls.cloud,
          scheduler_v1: stack.urls.scheduler,
          scheduler_v2: v2.urls,
          harpoon: harpoonUrls,
          public_api: stack.urls.publicApi ?? stack.urls.cloud,
          database: { host: server.admin.host, port: server.admin.port, name: database, source: server.source },
          secrets: { stack: stackSecrets.path, hypervisor_keys: keysPath },
          hypervisors,
          regions,
          example_token: seed.tokens.get(1),
        };
        if (values.json) writeJson(io, info);
        else
          io.stdout.write(
            [
              `Legacy stack is up (${hypervisors} hypervisors, ${regions} regions).`,
              `  dashboard:           ${info.dashboard}`,
              `  cutover admin:       ${info.admin}   e.g. ${tokenHint}strangler cutover status`,
              `  proxy:               ${info.proxy}`,
              `  monitor (MySQL):     ${info.monitor_metrics}`,
              `  prometheus targets:  ${targetsDir}/*.json (prometheus --config.file=dashboards/prometheus.yml)`,
              `  cloud API:           ${info.cloud}   e.g. curl -H "Authorization: Bearer ${info.example_token}" ${info.cloud}/v2/droplets`,
              `  scheduler v1:        ${info.scheduler_v1}/metrics`,
              `  scheduler v2:        ${info.scheduler_v2.join(', ')} (idle until scheduling advances; POST /explain takes the admin token)`,
              `  harpoon:             ${info.harpoon.join(', ')} (idle until event-writes advances)`,
              `  public API (proxy):  ${info.public_api}   (event-reads moves its action reads)`,
              `  fleet (agents):      ${info.fleet_metrics}`,
              `  database:            ${server.admin.host}:${server.admin.port}/${database} (${server.source})`,
              `  secrets (0600):      ${info.secrets.stack}, ${info.secrets.hypervisor_keys}`,
              'Ctrl-C stops everything.',
              '',
            ].join('\n'),
          );
        await waitForStop(io.signal, seconds, () => {
          const s = stack.fleet.stats();
          progress.update(`${s.connected} agents connected · ${s.godQueries} god queries · ${s.eventsExecuted} events executed`);
        });
        progress.log('stopping…');
      } finally {
        await stack.close();
      }
      return EXIT.ok;
    } finally {
      await server.release();
    }
  },
};
