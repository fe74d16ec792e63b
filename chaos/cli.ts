import { createProgress } from '../demo/progress.ts';
import { cliLogger } from '../cli/cli-logger.ts';
import { EXIT, intOption, parseCommandArgs, writeJson, type Command } from '../cli/command.ts';
import { runChaos } from './run-chaos.ts';

const HELP = `Usage: strangler chaos [options]     (npm run chaos -- [options])

Runs the demo's stack (Cloud, Scheduler V1, the fleet, an Event Router process
per region, the proxy cluster, the cutover admin, Scheduler V2 replica
processes, two Harpoon replica processes) on a throwaway MariaDB of its own,
under customer traffic, while the cutover moves forward (event-delivery,
scheduling, event-writes, event-reads, lockdown) and a fault
schedule drawn from the seed kills, at random moments: one Event Router, one
proxy worker, one Scheduler V2 replica, one Harpoon replica (kill -9), and
MySQL itself (kill -9 of mariadbd, restarted on its port and data directory) —
each kind twice, once with a cutover advance and once with a rollback made
while it is down. Each fault's recovery is timed by a probe (/readyz, a proxy
request, a MySQL query). Then traffic stops, the queue drains, and the
database and the agents' execution records are checked.

Prints ONE JSON object on stdout (progress on stderr): events created and
done, lost events, duplicate executions, over-committed hosts, droplets
without their event, the longest recovery, requests failed as the traffic
driver saw them, and the fault schedule with timestamps.

Options:
  --hypervisors N   Simulated hypervisors (default 200)
  --regions R       Regions (default 3)
  --duration S      Seconds of traffic with faults (default 60)
  --seed K          Seed of the fault schedule and the data (default 1)
  --rate N          Customer API requests per second (default 10)
  --replicas N      Scheduler V2 replica processes (default 2)
  --without-harpoon No Harpoon replicas (and no event-writes/event-reads/lockdown moves);
                    the harpoon faults are then skipped with a note
  --without-lockdown Move event-writes and event-reads but not lockdown
  --json            Accepted for symmetry: the output is always JSON
  -h, --help        This text

Exit codes: 0 nothing lost, doubled or over-committed and every component
recovered; 1 otherwise; 2 bad usage; 3 no mariadbd to start.

Example:
  npm run chaos -- --hypervisors 2000 --duration 300 --seed 1
`;

export const command: Command = {
  name: 'chaos',
  summary: 'kill components under traffic while the cutover moves; check nothing was lost or doubled',
  help: HELP,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      hypervisors: { type: 'string' },
      regions: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      replicas: { type: 'string' },
      'without-harpoon': { type: 'boolean' },
      'without-lockdown': { type: 'boolean' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    // Faults make every component log warnings by design (child processes read LOG_LEVEL too); the progress lines say what happened.
    io.env.LOG_LEVEL ??= 'error';
    // Children take LOG_LEVEL from this process's environment (lib/process/child-env.ts allows it through).
    process.env.LOG_LEVEL ??= io.env.LOG_LEVEL;
    const report = await runChaos({
      hypervisors: intOption('hypervisors', values.hypervisors, 200, 1, 20_000),
      regions: intOption('regions', values.regions, 3, 1, 50),
      durationS: intOption('duration', values.duration, 60, 10),
      seed: intOption('seed', values.seed, 1, 0),
      rate: intOption('rate', values.rate, 10, 0),
      schedulerReplicas: intOption('replicas', values.replicas, 2, 1, 16),
      harpoon: !values['without-harpoon'],
      lockdown: !values['without-lockdown'],
      logger: cliLogger(io.env),
      progress: createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }),
      env: io.env,
    });
    writeJson(io, report);
    return report.ok ? EXIT.ok : EXIT.failed;
  },
};
