import type { AutopilotView } from '../../proxy/cutover/autopilot-view.ts';
import { EXIT, type CommandIO } from '../command.ts';

/**
 * How `strangler cutover run` follows the admin's autopilot: it asks
 * GET /cutover/autopilot every `pollMs` and prints a line whenever a
 * followed feature's run, step, counters or reason to wait change (or the
 * view itself as a JSON line with --json). The run lives in the admin:
 * leaving (Ctrl-C) stops the following, not the run.
 */

const ACTIVE = new Set(['running', 'waiting']);

/** One progress line for a feature's autopilot view. */
export function progressLine(v: AutopilotView, now = new Date()): string {
  const time = now.toISOString().slice(11, 19);
  const parts = [
    `${time} ${v.feature} step ${v.step}/${v.steps} ${v.step_name}`,
    `run ${v.run}`,
    ...(v.step > 0 ? [`passes ${v.passes}/${v.passes_needed}`, `failures ${v.failures}/${v.failure_threshold}`, `no-data ${v.no_data}`] : []),
    ...(v.next_check_in_seconds !== null && ACTIVE.has(v.run) ? [`next check in ${v.next_check_in_seconds}s`] : []),
  ];
  return `${parts.join(' · ')}${v.waiting ? ` — ${v.waiting}` : ''}\n`;
}

/** What changes a line (not the countdown to the next check). */
function fingerprint(v: AutopilotView): string {
  return JSON.stringify([v.run, v.step, v.checks, v.passes, v.failures, v.no_data, v.waiting, v.paused]);
}

/**
 * Follows the runs of `features` (all of the plan's with --all, which moves from one to the
 * next) until none is running or waiting. Exit: 0 when every run is done, 3 when one was rolled
 * back or stopped.
 */
export async function followRuns(
  io: CommandIO,
  fetchViews: () => Promise<AutopilotView[]>,
  options: { features: readonly string[] | 'all'; json: boolean; pollMs?: number },
): Promise<number> {
  const seen = new Map<string, string>();
  const pollMs = options.pollMs ?? 1000;
  for (;;) {
    const views = (await fetchViews()).filter((v) => options.features === 'all' || options.features.includes(v.feature));
    for (const v of views) {
      const fp = fingerprint(v);
      if (seen.get(v.feature) === fp) continue;
      // --all: features not yet started are not news until their run begins.
      if (options.features === 'all' && !seen.has(v.feature) && !ACTIVE.has(v.run) && !v.run_all) {
        seen.set(v.feature, fp);
        continue;
      }
      seen.set(v.feature, fp);
      if (options.json) io.stdout.write(`${JSON.stringify(v)}\n`);
      else io.stdout.write(progressLine(v));
    }
    const followed = options.features === 'all' ? views.filter((v) => v.run_all || ACTIVE.has(v.run)) : views;
    if (!followed.some((v) => ACTIVE.has(v.run))) {
      const bad = followed.filter((v) => v.run === 'rolled-back' || v.run === 'stopped');
      if (!options.json) {
        for (const v of followed) io.stdout.write(`${v.feature}: run ${v.run} at step ${v.step}/${v.steps} ${v.step_name}\n`);
      }
      return bad.length > 0 ? EXIT.precondition : EXIT.ok;
    }
    if (io.signal.aborted) return EXIT.ok;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, pollMs);
      io.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
    if (io.signal.aborted) {
      if (!options.json) io.stderr.write('stopped following; the run goes on in the admin (strangler cutover status)\n');
      return EXIT.ok;
    }
  }
}
