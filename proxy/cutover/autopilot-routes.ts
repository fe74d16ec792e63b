import type { AdminScope } from '../../lib/auth/admin-token.ts';
import { sendJson } from '../../lib/http/respond.ts';
import type { Handler, RequestContext } from '../../lib/http/router.ts';
import type { Autopilot } from './autopilot.ts';
import { cutoverError } from './errors.ts';
import { quote } from '../../lib/errors.ts';

/**
 * The autopilot's admin routes (mounted by addCutoverRoutes when the admin runs an autopilot):
 *
 * - `GET /cutover/autopilot` (read): every feature's run and analysis (autopilot-view.ts);
 * - `GET /cutover/:feature/analysis?since=ID&limit=N` (read): the analysis runs, oldest first;
 * - `POST /cutover/:feature/run|promote|stop` (operate; lockdown for features with side effects);
 * - `POST /cutover/run-all` (operate, and lockdown when the plan has such features).
 */
export interface AutopilotRouteDeps {
  autopilot: Autopilot;
  guarded: (scope: AdminScope | ((ctx: RequestContext) => AdminScope), handler: (ctx: RequestContext, actor: string) => Promise<void>) => Handler;
  /** A POST on one feature: checks it, reads a body of `accepted` fields, answers fn's result. */
  verb: (fn: (feature: string, actor: string, body: Record<string, unknown>) => Promise<unknown>, accepted: readonly string[]) => Handler;
  readBody: (ctx: RequestContext, accepted: readonly string[]) => Promise<Record<string, unknown>>;
  reasonOf: (body: Record<string, unknown>) => string | null;
  checkQuery: (query: URLSearchParams, accepted: readonly string[]) => void;
  intQuery: (query: URLSearchParams, name: string, min: number, max: number) => number | undefined;
  features: readonly string[];
  effectFeatures: ReadonlySet<string>;
}

export function autopilotRoutes(d: AutopilotRouteDeps): Array<['GET' | 'POST', string, Handler]> {
  const { autopilot } = d;
  return [
    [
      'GET',
      '/cutover/autopilot',
      d.guarded('read', async (ctx) => {
        d.checkQuery(ctx.query, []);
        sendJson(ctx.res, 200, { features: await autopilot.view(), now: new Date().toISOString() });
      }),
    ],
    [
      'GET',
      '/cutover/:feature/analysis',
      d.guarded('read', async (ctx) => {
        const feature = ctx.params.feature!;
        if (!d.features.includes(feature)) throw cutoverError('CUTOVER_ERR_UNKNOWN_FEATURE', `no feature ${quote(feature)} in the cutover plan; the plan's features are ${d.features.join(', ')}`);
        d.checkQuery(ctx.query, ['since', 'limit']);
        const since = d.intQuery(ctx.query, 'since', 0, Number.MAX_SAFE_INTEGER);
        const limit = d.intQuery(ctx.query, 'limit', 1, 5000) ?? 500;
        sendJson(ctx.res, 200, { runs: await autopilot.runs(feature, { ...(since !== undefined ? { sinceId: since } : {}), limit }) });
      }),
    ],
    ['POST', '/cutover/:feature/run', d.verb((feature, actor, body) => autopilot.run(feature, actor, { reason: d.reasonOf(body) }), ['reason'])],
    ['POST', '/cutover/:feature/promote', d.verb((feature, actor, body) => autopilot.promote(feature, actor, d.reasonOf(body)), ['reason'])],
    ['POST', '/cutover/:feature/stop', d.verb((feature, actor, body) => autopilot.stop(feature, actor, d.reasonOf(body)), ['reason'])],
    [
      'POST',
      '/cutover/run-all',
      // --all may move a feature with side effects: the token must hold that scope too.
      d.guarded(d.features.some((f) => d.effectFeatures.has(f)) ? 'lockdown' : 'operate', async (ctx, actor) => {
        d.checkQuery(ctx.query, []);
        const body = await d.readBody(ctx, ['reason']);
        sendJson(ctx.res, 200, { features: await autopilot.runAll(actor, d.reasonOf(body)) });
      }),
    ],
  ];
}
