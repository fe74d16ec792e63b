/**
 * npm run bench:contention -- --hypervisors 1000 --rates 50,100,200,400 --seconds 10 --out DIR
 *
 * The talk's reason for Harpoon, measured: after every migration stage the same ramp of customer
 * bursts (creates, actions, destroys, reads) hits Cloud, and the server says what each cost: row
 * lock waits and their time, table locks waited, Threads_running, the oldest running statement,
 * which table the waiting transactions waited on and whose they were, and how many events queued.
 * The stages before Harpoon have every service writing `events` directly; the harpoon and lockdown
 * stages have Harpoon alone writing it in batches. One run, so the machine's load is shared by all
 * stages; prints ONE JSON object (rates × stages, with harpoon / scheduler-v2 ratios) and writes the
 * demo's report.json and report.html (the side-by-side table) under DIR.
 *
 * Options: --hypervisors N (default 1000), --regions R (default 3), --rates LIST (default
 * 50,100,200,400), --seconds S per burst (default 10), --stage-seconds S (default 10), --rate N
 * (the stages' own traffic, default 10), --out DIR (default out/contention), --seed K.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cliLogger } from '../cli/cli-logger.ts';
import type { ContentionReport } from '../demo/contention.ts';
import { createProgress } from '../demo/progress.ts';
import { runDemo } from '../demo/run-demo.ts';

const { values } = parseArgs({
  options: {
    hypervisors: { type: 'string', default: '1000' },
    regions: { type: 'string', default: '3' },
    rates: { type: 'string', default: '50,100,200,400' },
    seconds: { type: 'string', default: '10' },
    'stage-seconds': { type: 'string', default: '10' },
    rate: { type: 'string', default: '10' },
    out: { type: 'string', default: 'out/contention' },
    seed: { type: 'string', default: '1' },
  },
});

function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`bench:contention: --${name} must be a positive integer, got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

const hypervisors = positiveInt('hypervisors', values.hypervisors!);
const regions = positiveInt('regions', values.regions!);
const rates = values.rates!.split(',').map((r) => positiveInt('rates', r.trim()));
const seconds = positiveInt('seconds', values.seconds!);
const stageSeconds = positiveInt('stage-seconds', values['stage-seconds']!);
const rate = positiveInt('rate', values.rate!);
const seed = positiveInt('seed', values.seed!);
const out = resolve(values.out!);
const load = () => loadavg().map((l) => Math.round(l * 100) / 100);

const loadStart = load();
const started = Date.now();
const report = await runDemo({
  hypervisors,
  regions,
  out,
  stageSeconds,
  rate,
  seed,
  pollIntervalMs: { min: 1000, max: 5000 },
  workMs: 20,
  keepDatabase: false,
  contention: { rates, seconds },
  logger: cliLogger(process.env),
  progress: createProgress(process.stderr),
  env: process.env,
});

const pick = (c: ContentionReport) => ({
  achieved_rate_per_s: c.achieved_rate_per_s,
  requests_sent: c.requests_sent,
  requests_failed: c.requests_failed,
  innodb_row_lock_waits: c.innodb_row_lock_waits,
  innodb_row_lock_time_ms: c.innodb_row_lock_time_ms,
  table_locks_waited: c.table_locks_waited,
  threads_running_peak: c.threads_running_peak,
  threads_running_mean: c.threads_running_mean,
  oldest_statement_ms: c.oldest_statement_ms,
  lock_waiting_transactions_peak: c.lock_waiting_transactions_peak,
  lock_waits_seen: c.lock_waits_seen,
  events_unfinished_peak: c.events_unfinished_peak,
  cloud_request_ms: c.cloud_request_ms,
  events_unfinished_after_drain: c.events_unfinished_after_drain ?? null,
});

/** b / a rounded, or null where a is 0 (a ratio of nothing is not a figure). */
const ratio = (b: number, a: number) => (a > 0 ? Math.round((b / a) * 100) / 100 : null);

const byRate = rates.map((r) => {
  const stages = Object.fromEntries(
    report.stages.flatMap((s) => {
      const c = s.contention?.find((x) => x.rate_per_s === r);
      return c ? [[s.name, pick(c)]] : [];
    }),
  );
  const before = stages['scheduler-v2'];
  const after = stages['harpoon'];
  return {
    rate_per_s: r,
    stages,
    harpoon_vs_scheduler_v2:
      before && after
        ? {
            row_lock_time: ratio(after.innodb_row_lock_time_ms, before.innodb_row_lock_time_ms),
            threads_running_mean: ratio(after.threads_running_mean, before.threads_running_mean),
            oldest_statement_max: ratio(after.oldest_statement_ms.max, before.oldest_statement_ms.max),
            cloud_p99: ratio(after.cloud_request_ms.p99 ?? 0, before.cloud_request_ms.p99 ?? 0),
          }
        : null,
  };
});

process.stdout.write(
  JSON.stringify(
    {
      bench: 'contention',
      settings: { hypervisors, regions, rates, seconds_per_burst: seconds, stage_seconds: stageSeconds, stage_rate_per_s: rate, seed, thread_handling: report.settings.thread_handling, god_query: report.settings.god_query },
      machine: { cpus: cpus().length, total_memory_mb: Math.round(totalmem() / 1048576) },
      load_average: { start: loadStart, end: load() },
      seconds: Math.round((Date.now() - started) / 1000),
      out: { json: resolve(out, 'report.json'), html: resolve(out, 'report.html') },
      failed: report.failed ?? null,
      lost_events: report.lost_events,
      duplicate_executions: report.duplicate_executions,
      overcommitted_hosts: report.overcommitted_hosts,
      by_rate: byRate,
    },
    null,
    2,
  ) + '\n',
);
process.exitCode = report.failed ? 1 : 0;
