import { prepareDatabase } from '../../lib/db/database.ts';
import { createKnex } from '../../lib/db/knex.ts';
import { StranglerError } from '../../lib/errors.ts';
import { generateSeed } from '../../stack/seed/generate.ts';
import { insertSeed } from '../../stack/seed/insert.ts';
import { createProgress } from '../../demo/progress.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, UsageError, databaseOption, intOption, parseCommandArgs, writeJson, type Command } from '../command.ts';
import { resolveDatabaseTarget } from '../database-target.ts';

const HELP = `Usage: strangler db <migrate|seed> [options]

  migrate   Create the database if missing, apply every migration, and create
            the per-service MySQL users with least privilege.
  seed      Migrate, then fill an empty database with a generated fleet.

Options:
  --database NAME      Database name (default: the MYSQL_URL path, else "strangler")
  --hypervisors N      (seed) hypervisors to generate (default 200)
  --regions R          (seed) regions (default 3)
  --seed K             (seed) seed number; the same K yields the same rows, but for fresh random customer API tokens (default 1)
  --json               Print the result as JSON
  -h, --help           This text

Uses MYSQL_URL, else the server on 127.0.0.1:3306 (root, no password).

Example:
  strangler db seed --database demo --hypervisors 1000 --regions 5 --json
`;

export const command: Command = {
  name: 'db',
  summary: 'migrate | seed: create the schema, service users and a generated fleet',
  help: HELP,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      database: { type: 'string' },
      hypervisors: { type: 'string' },
      regions: { type: 'string' },
      seed: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    const verb = positionals[0];
    if (verb !== 'migrate' && verb !== 'seed') throw new UsageError(`expected "migrate" or "seed", got ${JSON.stringify(verb ?? '')}`);
    const hypervisors = intOption('hypervisors', values.hypervisors, 200, 1);
    const regions = intOption('regions', values.regions, 3, 1);
    const seedNumber = intOption('seed', values.seed, 1, 0);
    const logger = cliLogger(io.env);
    const target = await resolveDatabaseTarget({ env: io.env, database: databaseOption(values.database), needConnections: 10, logger });
    try {
      const config = await prepareDatabase(target.server, target.database, target.passwords);
      if (verb === 'migrate') {
        if (values.json) writeJson(io, { database: target.database, migrated: true, users: ['cloud', 'scheduler_v1', 'dobe', 'strangler_monitor'] });
        else io.stdout.write(`database ${target.database} is migrated; service users cloud, scheduler_v1, dobe, strangler_monitor are granted\n`);
        return EXIT.ok;
      }
      const db = createKnex(config, { poolMax: 1 });
      try {
        const [[{ n }]] = (await db.raw('SELECT COUNT(*) AS n FROM servers')) as [[{ n: number }]];
        if (Number(n) > 0) {
          throw new StranglerError('DB_ERR_NOT_EMPTY', `database ${target.database} already has ${n} servers; seed an empty database (use --database)`);
        }
        const data = generateSeed({ hypervisors, regions, seed: seedNumber });
        const progress = createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, { quiet: values.json });
        await insertSeed(db, data, (table, rows) => progress.update(`seeded ${table}: ${rows} rows`));
        const result = {
          database: target.database,
          seed: seedNumber,
          hypervisors: data.servers.length,
          regions: data.regions.map((r) => r.slug),
          profile: data.profile,
          customers: data.customers.length,
          droplets: data.droplets.length,
          pending_events: data.events.length,
        };
        if (values.json) writeJson(io, result);
        else
          io.stdout.write(
            `seeded ${result.hypervisors} hypervisors in ${result.regions.join(', ')} (${Object.entries(result.profile)
              .map(([k, v]) => `${v} ${k}`)
              .join(', ')}), ${result.customers} customers, ${result.droplets} droplets\n`,
          );
        return EXIT.ok;
      } finally {
        await db.destroy();
      }
    } finally {
      await target.release();
    }
  },
};
