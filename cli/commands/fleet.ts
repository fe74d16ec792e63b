import { createKnex } from '../../lib/db/knex.ts';
import { serviceDbConfig } from '../../lib/db/service-users.ts';
import { StranglerError } from '../../lib/errors.ts';
import { createFleet, DEFAULT_AGENTS_PER_PROCESS } from '../../dobe/fleet.ts';
import { createProgress } from '../../demo/progress.ts';
import { cliLogger } from '../cli-logger.ts';
import { EXIT, databaseOption, intOption, parseCommandArgs, waitForStop, writeJson, type Command } from '../command.ts';
import { resolveDatabaseTarget } from '../database-target.ts';
import { GOD_QUERY_MODE } from '../../legacy/dobe/god-query-mode.ts';

const HELP = `Usage: strangler fleet [options]

Runs simulated hypervisors: one legacy DOBE agent per server row, each
polling MySQL with the god query over its own connection, spread over
worker processes. Runs until Ctrl-C (or --seconds), then prints totals.

Options:
  --hypervisors N        Agents to run: servers 1..N of the database (default: all)
  --database NAME        Database (default: the MYSQL_URL path, else "strangler")
  --per-process N        Agents per worker process (default ${DEFAULT_AGENTS_PER_PROCESS})
  --poll-min MS          Shortest poll interval (default 1000)
  --poll-max MS          Longest poll interval (default 5000)
  --work-ms MS           Simulated execution time per event (default 20)
  --seconds S            Stop after S seconds (default: run until Ctrl-C)
  --json                 Print the totals as JSON
  -h, --help             This text

Example:
  strangler db seed --database demo --hypervisors 2000
  strangler fleet --database demo --seconds 60 --json
`;

export const command: Command = {
  name: 'fleet',
  summary: 'run simulated hypervisors (legacy DOBE agents polling MySQL)',
  help: HELP,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      hypervisors: { type: 'string' },
      database: { type: 'string' },
      'per-process': { type: 'string' },
      'poll-min': { type: 'string' },
      'poll-max': { type: 'string' },
      'work-ms': { type: 'string' },
      seconds: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    const logger = cliLogger(io.env);
    const pollMin = intOption('poll-min', values['poll-min'], 1000, 1);
    const pollMax = intOption('poll-max', values['poll-max'], 5000, pollMin);
    const requested = values.hypervisors === undefined ? undefined : intOption('hypervisors', values.hypervisors, 1, 1);
    const agentsPerProcess = intOption('per-process', values['per-process'], DEFAULT_AGENTS_PER_PROCESS, 1, 15_000);
    const workMs = intOption('work-ms', values['work-ms'], 20, 0);
    const seconds = values.seconds === undefined ? undefined : intOption('seconds', values.seconds, 0, 1);
    const database = databaseOption(values.database);
    const target = await resolveDatabaseTarget({ env: io.env, database, needConnections: (requested ?? 1) + 20, logger });
    const progress = createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }, { quiet: values.json });
    const admin = createKnex({ ...target.server, database: target.database }, { poolMax: 1 });
    try {
      const rows: Array<{ id: number }> = await admin('servers').orderBy('id').limit(requested ?? 1_000_000).select('id');
      if (rows.length === 0) throw new StranglerError('FLEET_ERR_NO_SERVERS', `database ${target.database} has no servers; run "strangler db seed" first`);
      if (rows.length + 20 > target.maxConnections) {
        throw new StranglerError(
          'DB_ERR_TOO_FEW_CONNECTIONS',
          `${rows.length} agents need ${rows.length + 20} connections but the server allows max_connections=${target.maxConnections}; ` +
            'raise it (runbooks/database.md) or pass --hypervisors',
        );
      }
      const fleet = createFleet({
        db: serviceDbConfig(target.server, target.database, 'dobe', target.passwords),
        serverIds: rows.map((r) => r.id),
        pollingMode: GOD_QUERY_MODE,
        agentsPerProcess,
        pollIntervalMs: { min: pollMin, max: pollMax },
        workMs,
        logger,
        onProgress: (connected, total) => progress.update(`${connected}/${total} agents connected`),
      });
      const started = Date.now();
      await fleet.start();
      progress.log(`${rows.length} agents running in ${fleet.processes().length} processes; Ctrl-C to stop`);
      await waitForStop(io.signal, seconds, () => {
        const s = fleet.stats();
        progress.update(`${s.connected} connected · ${s.godQueries} god queries · ${s.eventsExecuted} events executed · ${s.errors} errors`);
      });
      await fleet.close();
      const totals = { agents: rows.length, seconds: Math.round((Date.now() - started) / 1000), ...fleet.stats(), processes: fleet.processes() };
      if (values.json) writeJson(io, totals);
      else io.stdout.write(`${totals.agents} agents ran ${totals.seconds}s: ${totals.godQueries} god queries, ${totals.eventsExecuted} events executed\n`);
      return EXIT.ok;
    } finally {
      await admin.destroy();
      await target.release();
    }
  },
};
