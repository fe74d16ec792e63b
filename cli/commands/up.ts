import { prepareDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { provisionServer } from '../../lib/db/provision.ts';
import { DEFAULT_DB_SECRET } from '../../lib/db/service-users.ts';
import { generateSeed } from '../../legacy/seed/generate.ts';
import { insertSeed } from '../../legacy/seed/insert.ts';
import { startLegacyStack } from '../../legacy/stack.ts';
import { createProgress } from '../../demo/progress.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, databaseOption, intOption, parseCommandArgs, waitForStop, writeJson, type Command } from '../command.ts';

const HELP = `Usage: strangler up [options]

Starts the whole stack in its legacy state on this machine and keeps it
running until Ctrl-C: a database (found or throwaway), a migrated and seeded
schema, Cloud, Scheduler V1, the monitor (MySQL metrics) and one DOBE agent
per hypervisor. Prints the URLs to use.

Options:
  --hypervisors N    Simulated hypervisors (default 200)
  --regions R        Regions (default 3)
  --seed K           Seed number (default 1)
  --database NAME    Database name (default: a fresh strangler_up_<random>)
  --port P           Monitor/dashboard port (default 9400; 0 = any)
  --cloud-port P     Cloud API port (default 9401; 0 = any)
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
      'cloud-port': { type: 'string' },
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
    const secret = io.env.STRANGLER_DB_SECRET ?? DEFAULT_DB_SECRET;
    const server = await provisionServer({ env: io.env, logger, needConnections: hypervisors + 150 });
    progress.log(`database: ${server.source} server ${server.admin.host}:${server.admin.port} (${server.serverVersion})`);
    try {
      const database = requestedDatabase ?? uniqueDatabaseName('strangler_up');
      const config = await prepareDatabase(server.admin, database, secret);
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
      const stack = await startLegacyStack({
        server: server.admin,
        database,
        secret,
        serverIds,
        logger,
        ports: { monitor: intOption('port', values.port, 9400, 0), cloud: intOption('cloud-port', values['cloud-port'], 9401, 0) },
        onFleetProgress: (connected, total) => progress.update(`fleet: ${connected}/${total} agents connected`),
      });
      try {
        const info = {
          dashboard: `${stack.urls.monitor}/metrics`,
          fleet_metrics: `${stack.urls.fleet}/metrics`,
          cloud: stack.urls.cloud,
          scheduler_v1: stack.urls.scheduler,
          database: { host: server.admin.host, port: server.admin.port, name: database, source: server.source },
          hypervisors,
          regions,
          example_token: seed.tokens.get(1),
        };
        if (values.json) writeJson(io, info);
        else
          io.stdout.write(
            [
              `Legacy stack is up (${hypervisors} hypervisors, ${regions} regions).`,
              `  dashboard (metrics): ${info.dashboard}`,
              `  cloud API:           ${info.cloud}   e.g. curl -H "Authorization: Bearer ${info.example_token}" ${info.cloud}/v2/droplets`,
              `  scheduler v1:        ${info.scheduler_v1}/metrics`,
              `  fleet (agents):      ${info.fleet_metrics}`,
              `  database:            ${server.admin.host}:${server.admin.port}/${database} (${server.source})`,
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
