/**
 * npm run bench:sweep -- --sizes 500,1000,2000,5000,10000,15000 --out DIR
 *
 * Each architecture at each fleet size, measured by the server: where each
 * one breaks. Writes DIR/sweep.json and DIR/sweep.html after every run, and
 * skips the runs sweep.json already holds, so an interrupted sweep resumes.
 * Prints the final sweep.json's summary as one JSON object.
 *
 * Options: --sizes LIST, --out DIR, --variants LIST (default migration,legacy-optimized,legacy-pooled;
 * also legacy-thread-pool), --stage-seconds S (default 15),
 * --rate N (default 10), --poll-min/--poll-max MS (default 1000/5000), --regions R
 * (default: one per 1,500 hypervisors, at least 2), --multiplex N (default 8), --seed K.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cliLogger } from '../cli/cli-logger.ts';
import { createProgress } from '../demo/progress.ts';
import type { DemoReport, StageName } from '../demo/report-types.ts';
import { runDemo, type DemoOptions } from '../demo/run-demo.ts';
import { StranglerError } from '../lib/errors.ts';
import { renderSweepHtml } from './sweep/html.ts';
import { findKnees } from './sweep/knee.ts';
import { SWEEP_VARIANTS, type SweepReport, type SweepRow, type SweepVariant } from './sweep/types.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '500,1000,2000,5000,10000,15000' },
    out: { type: 'string', default: 'out/sweep' },
    variants: { type: 'string', default: 'migration,legacy-optimized,legacy-pooled' },
    'stage-seconds': { type: 'string', default: '15' },
    rate: { type: 'string', default: '10' },
    'poll-min': { type: 'string', default: '1000' },
    'poll-max': { type: 'string', default: '5000' },
    regions: { type: 'string' },
    multiplex: { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
  },
});

function usage(message: string): never {
  process.stderr.write(`bench:sweep: ${message}\n`);
  process.exit(2);
}

function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) usage(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

const sizes = values.sizes!.split(',').map((s) => positiveInt('sizes', s.trim()));
const variants = values.variants!.split(',').map((v) => v.trim()) as SweepVariant[];
for (const v of variants) if (!(SWEEP_VARIANTS as readonly string[]).includes(v)) usage(`--variants: unknown "${v}" (known: ${SWEEP_VARIANTS.join(', ')})`);
const stageSeconds = positiveInt('stage-seconds', values['stage-seconds']!);
const rate = positiveInt('rate', values.rate!);
const poll = { min: positiveInt('poll-min', values['poll-min']!), max: positiveInt('poll-max', values['poll-max']!) };
const multiplex = positiveInt('multiplex', values.multiplex!);
const seed = positiveInt('seed', values.seed!);
const out = resolve(values.out!);
const regionsFor = (size: number) => (values.regions ? positiveInt('regions', values.regions) : Math.max(2, Math.round(size / 1500)));

const settings = { stage_seconds: stageSeconds, rate_per_s: rate, poll_interval_ms: `${poll.min}-${poll.max}`, multiplex_per_fleet_process: multiplex, seed };
const progress = createProgress(process.stderr);
const logger = cliLogger(process.env);

/** What each variant changes from the 2016 legacy (one thread per connection, the 2016 god query). */
function variantOptions(variant: SweepVariant): Pick<DemoOptions, 'stages' | 'legacy'> {
  switch (variant) {
    case 'migration':
      return { legacy: { threadHandling: 'one-thread-per-connection', godQuery: '2016' } };
    case 'legacy-pooled':
      return { stages: ['legacy'], legacy: { threadHandling: 'one-thread-per-connection', godQuery: '2016', multiplex } };
    case 'legacy-thread-pool':
      return { stages: ['legacy'], legacy: { threadHandling: 'pool-of-threads', godQuery: '2016' } };
    case 'legacy-optimized':
      return { stages: ['legacy'], legacy: { threadHandling: 'one-thread-per-connection', godQuery: 'optimized' } };
  }
}

function rowsOf(variant: SweepVariant, size: number, report: DemoReport): SweepRow[] {
  const num = (v: number | string | undefined) => (typeof v === 'number' ? v : null);
  return report.stages.map((stage) => ({
    variant,
    stage: stage.name,
    series: variant === 'migration' ? `migration/${stage.name}` : variant,
    size,
    connections: stage.mysql_connections.total,
    polling_queries_per_s: stage.polling_queries_per_s,
    latency_ms: stage.event_latency_ms,
    cloud_error_rate: num(stage.details?.cloud_error_rate) ?? 0,
    mariadbd_cpu_cores: num(stage.details?.mariadbd_cpu_cores),
    mariadbd_rss_mb: num(stage.details?.mariadbd_rss_mb),
    threads_running_peak: num(stage.details?.threads_running_peak),
    innodb_row_lock_waits: num(stage.details?.innodb_row_lock_waits),
    thread_handling: String(report.settings.thread_handling ?? ''),
    god_query: String(report.settings.god_query ?? ''),
  }));
}

async function load(): Promise<SweepReport> {
  const now = new Date().toISOString();
  const fresh: SweepReport = { started_at: now, updated_at: now, settings, done: [], rows: [], failures: [], knees: [], machine: machine(), run_seconds: {} };
  try {
    const previous = JSON.parse(await readFile(join(out, 'sweep.json'), 'utf8')) as SweepReport;
    progress.log(`resuming ${join(out, 'sweep.json')}: ${previous.done.length} runs already measured (${previous.done.join(', ')})`);
    return { ...previous, settings: { ...previous.settings, ...settings } };
  } catch {
    return fresh;
  }
}

function machine(): SweepReport['machine'] {
  return { cpus: cpus().length, load_average: loadavg().map((l) => Math.round(l * 100) / 100), total_memory_mb: Math.round(totalmem() / 1048576) };
}

async function save(report: SweepReport): Promise<void> {
  report.updated_at = new Date().toISOString();
  report.machine = machine();
  report.knees = findKnees(report.rows, report.failures);
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'sweep.json'), JSON.stringify(report, null, 2) + '\n');
  await writeFile(join(out, 'sweep.html'), renderSweepHtml(report));
}

const report = await load();
const plan = sizes.flatMap((size) => variants.map((variant) => ({ size, variant })));
const sweepStarted = Date.now();
for (const [k, { size, variant }] of plan.entries()) {
  const key = `${variant}@${size}`;
  if (report.done.includes(key)) continue;
  progress.log(`[${k + 1}/${plan.length}] ${variant} at ${size} hypervisors (${regionsFor(size)} regions)…`);
  const started = Date.now();
  try {
    const demo = await runDemo({
      hypervisors: size,
      regions: regionsFor(size),
      out: join(out, 'runs', key.replace('@', '-')),
      stageSeconds,
      rate,
      seed,
      pollIntervalMs: poll,
      workMs: 20,
      keepDatabase: false,
      logger,
      progress,
      env: process.env,
      ...variantOptions(variant),
    });
    report.rows.push(...rowsOf(variant, size, demo));
    if (demo.failed) report.failures.push({ variant, size, stage: demo.failed.stage as StageName, code: demo.failed.code, message: demo.failed.message });
  } catch (err) {
    report.failures.push({ variant, size, code: err instanceof StranglerError ? err.code : 'SWEEP_ERR_RUN_FAILED', message: (err as Error).message });
    progress.log(`${key}: the run failed: ${(err as Error).message}`);
  }
  report.done.push(key);
  report.run_seconds[key] = Math.round((Date.now() - started) / 1000);
  await save(report);
  progress.log(`${key}: done in ${report.run_seconds[key]}s; ${join(out, 'sweep.json')} and sweep.html updated`);
}
await save(report);
process.stdout.write(
  JSON.stringify(
    {
      bench: 'sweep',
      settings: { ...settings, sizes, variants },
      out: { json: join(out, 'sweep.json'), html: join(out, 'sweep.html') },
      seconds_this_invocation: Math.round((Date.now() - sweepStarted) / 1000),
      run_seconds: report.run_seconds,
      knees: report.knees,
      failures: report.failures,
      machine: report.machine,
    },
    null,
    2,
  ) + '\n',
);
