import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http/respond.ts';
import type { Router } from '../../lib/http/router.ts';
import type { AutopilotView } from '../cutover/autopilot-view.ts';
import type { HistoryEntry } from '../cutover/state-store.ts';
import type { DashboardCollector } from './collector.ts';

export interface DashboardRoutesOptions {
  collector: DashboardCollector;
  /** The cutover history, newest first (the controller's history()): step-change markers. */
  history?: (limit: number) => Promise<HistoryEntry[]>;
  /** The autopilot's view of every feature (admin.autopilot.view()): the current analysis and why it waits. */
  autopilot?: () => Promise<AutopilotView[]>;
  /** The grant watcher's last check (harpoon/grant-watcher.ts last()): drift is a red mark on the page. */
  lockdown?: () => LockdownCheck | undefined;
}

/** What the grant watcher last read: whether lockdown holds and the grants on event data outside its policy. */
export interface LockdownCheck {
  lockdown: boolean;
  drift: ReadonlyArray<{ grantee: string; privilege: string; table: string }>;
  checked_at: string;
}

/** `state`: drift (red), holds (sole access as the cutover state says), not-locked (nothing to judge yet), unknown (no check yet). */
export function lockdownPanel(check: LockdownCheck | undefined) {
  if (!check) return { state: 'unknown' as const, drift: [] as string[], checked_at: null };
  const drift = check.drift.map((g) => `${g.grantee} ${g.privilege} on ${g.table}`);
  const state = !check.lockdown ? ('not-locked' as const) : drift.length > 0 ? ('drift' as const) : ('holds' as const);
  return { state, drift, checked_at: check.checked_at };
}

/** What the token-less page may show of the autopilot: counters, verdicts and reasons, never a reading's values. */
function autopilotPanel(views: AutopilotView[]) {
  return views.map((v) => ({
    feature: v.feature,
    run: v.run,
    step: v.step,
    steps: v.steps,
    step_name: v.step_name,
    paused: v.paused,
    manual_judgement: v.manual_judgement,
    soak_remaining_seconds: v.soak_remaining_seconds,
    interval_seconds: v.interval_seconds,
    checks: v.checks,
    passes: v.passes,
    passes_needed: v.passes_needed,
    failures: v.failures,
    failure_threshold: v.failure_threshold,
    no_data: v.no_data,
    last_outcome: v.last_outcome,
    next_check_in_seconds: v.next_check_in_seconds,
    gates: (v.readings ?? []).map((r) => ({ gate: r.gate, verdict: r.verdict })),
    waiting: v.waiting,
  }));
}

const require = createRequire(import.meta.url);

/** The page and its assets, read once; uPlot comes from the installed package (no CDN: works offline). */
function loadAssets(): Record<string, { type: string; body: Buffer }> {
  const here = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url));
  const uplotDir = require.resolve('uplot/dist/uPlot.iife.min.js').replace(/uPlot\.iife\.min\.js$/, '');
  return {
    '/dashboard': { type: 'text/html; charset=utf-8', body: here('index.html') },
    '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: here('app.js') },
    '/dashboard/style.css': { type: 'text/css; charset=utf-8', body: here('style.css') },
    '/dashboard/uplot.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(`${uplotDir}uPlot.iife.min.js`) },
    '/dashboard/uplot.css': { type: 'text/css; charset=utf-8', body: readFileSync(`${uplotDir}uPlot.min.css`) },
  };
}

function sendAsset(res: ServerResponse, asset: { type: string; body: Buffer }): void {
  res.writeHead(200, {
    'content-type': asset.type,
    'content-length': asset.body.length,
    'cache-control': 'no-cache',
    // Everything the page loads comes from this server.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    'x-content-type-options': 'nosniff',
  });
  res.end(asset.body);
}

/**
 * The live dashboard on the proxy's admin port: `GET /dashboard` (the page),
 * its static assets, and `GET /dashboard/data` (the collector's series and
 * the cutover history's step changes). Read-only and without a token: the
 * data holds metrics and who changed which step, never a token or a gate's
 * raw readings.
 *
 * @example
 *   const collector = createDashboardCollector({ sources });
 *   addDashboardRoutes(admin.router, { collector, history: (limit) => admin.controller.history({ limit }), autopilot: () => admin.autopilot.view() });
 *   collector.start(); // then open http://127.0.0.1:9400/dashboard
 */
export function addDashboardRoutes(router: Router, options: DashboardRoutesOptions): Router {
  const assets = loadAssets();
  for (const [path, asset] of Object.entries(assets)) router.add('GET', path, ({ res }) => sendAsset(res, asset));
  router.add('GET', '/dashboard/data', async ({ res }) => {
    let markers: Array<{ t: number; feature: string; action: string; from_step: number; to_step: number; actor: string; reason: string | null }> = [];
    let historyError: string | undefined;
    if (options.history) {
      try {
        markers = (await options.history(200))
          .filter((h) => h.from_step !== h.to_step)
          .map((h) => ({ t: Date.parse(h.at) / 1000, feature: h.feature, action: h.action, from_step: h.from_step, to_step: h.to_step, actor: h.actor, reason: h.reason }))
          .reverse();
      } catch (err) {
        historyError = `the cutover history could not be read: ${(err as Error).message.slice(0, 120)}`;
      }
    }
    let autopilot: ReturnType<typeof autopilotPanel> | undefined;
    if (options.autopilot) {
      try {
        autopilot = autopilotPanel(await options.autopilot());
      } catch (err) {
        historyError = `the autopilot state could not be read: ${(err as Error).message.slice(0, 120)}`;
      }
    }
    res.setHeader('cache-control', 'no-store');
    sendJson(res, 200, {
      ...options.collector.data(),
      markers,
      ...(autopilot ? { autopilot } : {}),
      ...(options.lockdown ? { lockdown: lockdownPanel(options.lockdown()) } : {}),
      ...(historyError ? { history_error: historyError } : {}),
    });
  });
  return router;
}
