/**
 * npm run bench:legacy -- --hypervisors 15000 --regions 10
 *
 * The "before" column: the legacy replica at full scale, measured by the
 * MySQL server. Runs the demo's legacy stage and prints one JSON object.
 */
import { parseArgs } from 'node:util';
import { createProgress } from '../demo/progress.ts';
import { runDemo } from '../demo/run-demo.ts';
import { cliLogger } from '../cli/cli-logger.ts';

const { values } = parseArgs({
  options: {
    hypervisors: { type: 'string', default: '2000' },
    regions: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '60' },
    'poll-min': { type: 'string', default: '1000' },
    'poll-max': { type: 'string', default: '5000' },
    rate: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'out/bench-legacy' },
  },
});
const settings = {
  hypervisors: Number(values.hypervisors),
  regions: Number(values.regions),
  stage_seconds: Number(values.seconds),
  poll_interval_ms: { min: Number(values['poll-min']), max: Number(values['poll-max']) },
  rate_per_s: Number(values.rate),
  seed: Number(values.seed),
};
const report = await runDemo({
  hypervisors: settings.hypervisors,
  regions: settings.regions,
  out: values.out!,
  stageSeconds: settings.stage_seconds,
  rate: settings.rate_per_s,
  seed: settings.seed,
  pollIntervalMs: settings.poll_interval_ms,
  workMs: 20,
  keepDatabase: false,
  // The later stages put every agent stream through one process: at 15,000 that exceeds its open-file limit.
  stages: ['legacy'],
  logger: cliLogger(process.env),
  progress: createProgress(process.stderr),
  env: process.env,
});
const legacy = report.stages.find((s) => s.name === 'legacy')!;
const meanPollS = (settings.poll_interval_ms.min + settings.poll_interval_ms.max) / 2000;
const result = {
  bench: 'legacy',
  settings,
  database: report.database,
  mysql_connections: legacy.mysql_connections,
  mysql_max_used_connections: Math.max(0, ...report.timeline.map((s) => s.connections_total)),
  god_queries_per_s: legacy.details?.god_queries_per_s_client,
  polling_selects_per_s_server: legacy.polling_queries_per_s,
  expected_god_queries_per_s: Math.round(settings.hypervisors / meanPollS),
  queries_per_s_peak: Math.max(0, ...report.timeline.map((s) => s.questions_per_s)),
  event_latency_ms: legacy.event_latency_ms,
  events_created: legacy.events_created,
  events_done: legacy.events_done,
  lost_events: report.lost_events,
  duplicate_executions: report.duplicate_executions,
  overcommitted_hosts: report.overcommitted_hosts,
  processes: report.processes.map((p) => ({ role: p.role, pid: p.pid, peak_rss_mb: Math.round(p.peak_rss_bytes / 1048576) })),
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
