import { createProgress } from '../../demo/progress.ts';
import { runDemo } from '../../demo/run-demo.ts';
import { cliLogger } from '../cli-logger.ts';
import { STAGE_NAMES, type StageName } from '../../demo/report-types.ts';
import { invalidOption } from '../../lib/errors.ts';
import { GOD_QUERY_VARIANTS } from '../../legacy/dobe/god-query.ts';
import type { LatencySummary } from '../../lib/metrics/sample-percentiles.ts';
import { EXIT, intOption, parseCommandArgs, writeJson, type Command } from '../command.ts';

const HELP = `Usage: strangler demo [options]     (npm run demo -- [options])

Runs the migration end to end on this machine — database, seed, the legacy
stack under customer traffic, then event delivery moved to the regional Event
Routers region by region through the cutover controller, each stage measured
from the MySQL server — and writes DIR/report.json and DIR/report.html.

Options:
  --hypervisors N    Simulated hypervisors (default 200)
  --regions R        Regions (default 3)
  --out DIR          Where to write the report (default out/demo)
  --stage-seconds S  Seconds of traffic per stage (default 20)
  --rate N           Customer API requests per second (default 10)
  --seed K           Seed number (default 1)
  --poll-min MS      Agents' shortest poll interval (default 1000)
  --poll-max MS      Agents' longest poll interval (default 5000)
  --work-ms MS       Simulated execution time per event (default 20)
  --soak-seconds S   Soak of each event-delivery cutover step (default 2)
  --router-poll-ms MS  Event Routers' poll interval (default 1000)
  --thread-handling one-thread-per-connection|pool-of-threads
                     How a server the demo starts serves connections (default
                     one-thread-per-connection, as MySQL 5.6/5.7 in 2016)
  --god-query 2016|optimized
                     The legacy agents' query (default 2016: 18 tables, no hints, no LIMIT)
  --multiplex N      Legacy agents of one fleet process share N connections (the
                     "pooler in front of MySQL" counterfactual; default: one each)
  --legacy-max-seconds S  Longest the legacy stage waits for a p99's sample (default 3 x stage-seconds)
  --contention-rate N[,N…] After each stage, a burst at each rate in turn (requests/s) to
                           compare locks and backlog across stages at the same load
                           (default 30; 0 = off; e.g. 50,100,200,400 for a ramp)
  --contention-seconds S   Length of each burst (default 5)
  --stages LIST      Comma-separated stages to run, each needing the ones before it
                     (default: all, legacy,event-router,scheduler-v2,harpoon,lockdown)
  --keep-database    Keep the demo database afterwards
  --json             Print report.json to stdout as well
  -h, --help         This text

Examples:
  npm run demo -- --hypervisors 2000 --regions 5 --out out/2016          # the 2016 legacy, as it was
  npm run demo -- --hypervisors 15000 --regions 10 --god-query optimized --thread-handling pool-of-threads --out out/full
                     (the talk's scale; with the 2016 legacy, 15,000 agents run a
                     24 GB machine's database out of memory: DEMO_ERR_DATABASE_DIED)
`;

const THREAD_HANDLINGS = ['one-thread-per-connection', 'pool-of-threads'] as const;

/** One of a fixed set of values, or a usage error that lists them. */
function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw invalidOption(`--${name}`, value, `one of ${allowed.join(', ')}`);
  return value as T;
}

/** The bursts after each stage (on by default in the CLI: the report's locks and backlog table). */
function contentionOption(rate: string | undefined, seconds: string | undefined): { contention?: { rates: number[]; seconds: number } } {
  const rates = (rate ?? '30').split(',').map((r) => intOption('contention-rate', r.trim(), 30, 0, 10_000));
  if (rates.length === 1 && rates[0] === 0) return {};
  if (rates.includes(0)) throw invalidOption('--contention-rate', rate, 'rates above 0 (or 0 alone to turn the bursts off)');
  return { contention: { rates, seconds: intOption('contention-seconds', seconds, 5, 1, 600) } };
}

/** `--stages a,b,c`: known names, in the migration's order, each after the ones it builds on. */
function parseStages(raw: string | undefined): StageName[] | undefined {
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(STAGE_NAMES as readonly string[]).includes(n)) throw invalidOption('--stages', raw, `a comma-separated list of ${STAGE_NAMES.join(', ')}`);
  }
  const wanted = STAGE_NAMES.filter((n) => names.includes(n));
  const missing = wanted.length === 0 ? [] : STAGE_NAMES.slice(0, STAGE_NAMES.indexOf(wanted.at(-1)!)).filter((n) => !wanted.includes(n));
  if (wanted.length === 0 || missing.length > 0) {
    throw invalidOption('--stages', raw, `stages from legacy on without gaps (each builds on the ones before it)${missing.length ? `; missing ${missing.join(', ')}` : ''}`);
  }
  return wanted;
}

export const command: Command = {
  name: 'demo',
  summary: 'run the whole migration with real numbers and write report.json/html',
  help: HELP,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      hypervisors: { type: 'string' },
      regions: { type: 'string' },
      out: { type: 'string' },
      'stage-seconds': { type: 'string' },
      rate: { type: 'string' },
      seed: { type: 'string' },
      'poll-min': { type: 'string' },
      'poll-max': { type: 'string' },
      'work-ms': { type: 'string' },
      'soak-seconds': { type: 'string' },
      'router-poll-ms': { type: 'string' },
      stages: { type: 'string' },
      'thread-handling': { type: 'string' },
      'god-query': { type: 'string' },
      multiplex: { type: 'string' },
      'legacy-max-seconds': { type: 'string' },
      'contention-rate': { type: 'string' },
      'contention-seconds': { type: 'string' },
      'keep-database': { type: 'boolean' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return EXIT.ok;
    }
    const pollMin = intOption('poll-min', values['poll-min'], 1000, 1);
    const stages = parseStages(values.stages);
    const report = await runDemo({
      hypervisors: intOption('hypervisors', values.hypervisors, 200, 1),
      regions: intOption('regions', values.regions, 3, 1),
      out: values.out ?? 'out/demo',
      stageSeconds: intOption('stage-seconds', values['stage-seconds'], 20, 1),
      rate: intOption('rate', values.rate, 10, 0),
      seed: intOption('seed', values.seed, 1, 0),
      pollIntervalMs: { min: pollMin, max: intOption('poll-max', values['poll-max'], 5000, pollMin) },
      workMs: intOption('work-ms', values['work-ms'], 20, 0),
      soakSeconds: intOption('soak-seconds', values['soak-seconds'], 2, 0),
      routerPollMs: intOption('router-poll-ms', values['router-poll-ms'], 1000, 10),
      ...(stages ? { stages } : {}),
      legacy: {
        threadHandling: choice('thread-handling', values['thread-handling'], THREAD_HANDLINGS, 'one-thread-per-connection'),
        godQuery: choice('god-query', values['god-query'], GOD_QUERY_VARIANTS, '2016'),
        ...(values.multiplex !== undefined ? { multiplex: intOption('multiplex', values.multiplex, 0, 1, 10_000) } : {}),
      },
      ...contentionOption(values['contention-rate'], values['contention-seconds']),
      ...(values['legacy-max-seconds'] !== undefined ? { legacyMaxSeconds: intOption('legacy-max-seconds', values['legacy-max-seconds'], 60, 1) } : {}),
      keepDatabase: values['keep-database'] ?? false,
      logger: cliLogger(io.env),
      progress: createProgress(io.stderr as NodeJS.WritableStream & { isTTY?: boolean }),
      env: io.env,
    });
    if (values.json) writeJson(io, report);
    else {
      io.stdout.write(`\nstage            connections  polling q/s  latency p50/p99 ms (n)  events done/created\n`);
      for (const s of report.stages) {
        io.stdout.write(
          `${s.name.padEnd(16)} ${String(s.mysql_connections.total).padStart(11)}  ${String(s.polling_queries_per_s).padStart(11)}  ${latencyCell(s.event_latency_ms).padStart(22)}  ${`${s.events_done}/${s.events_created}`.padStart(19)}\n`,
        );
      }
      const bursts = report.stages.filter((s) => s.contention?.length);
      if (bursts.length) {
        io.stdout.write(`\nsame bursts after each stage   row lock waits (ms)  Threads_running peak  oldest stmt max ms (n)  Cloud p99 ms (n)\n`);
        for (const s of bursts) {
          for (const c of s.contention!) {
            io.stdout.write(
              `${`${s.name} @${c.rate_per_s}/s`.padEnd(28)} ${`${c.innodb_row_lock_waits} (${c.innodb_row_lock_time_ms})`.padStart(19)}  ${String(c.threads_running_peak).padStart(20)}  ${`${c.oldest_statement_ms.max} (${c.oldest_statement_ms.n})`.padStart(22)}  ${latencyCell(c.cloud_request_ms, 'p99').padStart(16)}\n`,
            );
          }
        }
      }
      io.stdout.write(`lost events ${report.lost_events} · duplicate executions ${report.duplicate_executions} · over-committed hosts ${report.overcommitted_hosts}\n`);
      if (report.failed) io.stdout.write(`stage ${report.failed.stage} failed (${report.failed.code}): ${report.failed.message}\n`);
    }
    return !report.failed && report.lost_events === 0 && report.duplicate_executions === 0 && report.overcommitted_hosts === 0 ? EXIT.ok : EXIT.failed;
  },
};

/** `p50/p99 (n)`, or one of them with its n; "n/a" for a percentile the sample is too small for. */
function latencyCell(s: LatencySummary, only?: 'p50' | 'p99'): string {
  if (only) return `${s[only] ?? 'n/a'} (${s.n})`;
  return `${s.p50 ?? 'n/a'}/${s.p99 ?? 'n/a'} (${s.n})`;
}
