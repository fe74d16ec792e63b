import { describe, expect, it } from 'vitest';
import { CutoverError } from '../../../proxy/cutover/errors.ts';
import { resolveAnalysis, validatePlan } from '../../../proxy/cutover/plan.ts';

const step = (extra: Record<string, unknown> = {}) => ({ name: 'all', mode: 'full', soak_seconds: 0, gates: [], ...extra });

function errorsOf(plan: unknown): string[] {
  try {
    validatePlan(plan);
  } catch (err) {
    expect(err).toBeInstanceOf(CutoverError);
    return ((err as CutoverError).details.errors as string[]) ?? [];
  }
  return [];
}

describe('the plan fields of the autopilot, its providers and webhooks', () => {
  it('accepts analysis at three levels, manual judgement, provider gates and webhooks, and resolves step over feature over plan', () => {
    const plan = validatePlan({
      version: 1,
      analysis: { interval_seconds: 5, passes: 4, on_failure: 'legacy' },
      webhooks: [
        { name: 'gate', type: 'confirm', url: 'https://gate.example/hook', secret: 'hooks', timeout_ms: 2000 },
        { name: 'chat', type: 'notify', url: 'http://127.0.0.1:9999/slack', format: 'slack', events: ['rollback', 'drift'], features: ['scheduling'] },
      ],
      features: {
        scheduling: {
          analysis: { passes: 2, after_soak: 'rollback' },
          steps: [
            step({
              name: 'shadow',
              mode: 'shadow',
              manual_judgement: true,
              analysis: { failure_threshold: 5 },
              gates: [
                { kind: 'prometheus', service: 'prometheus', query: 'max(up)', min: 1 },
                { kind: 'web', service: 'queue', path: '/stats', json_path: '$.items[0].depth', max: 10 },
                { kind: 'invariant', check: 'lost_events', stuck_after_seconds: 30 },
                { kind: 'budget', users: ['scheduler_v2'], max_connections: 20, max_polling_queries_per_s: 5 },
              ],
            }),
            step(),
          ],
        },
      },
    });
    expect(resolveAnalysis(plan, 'scheduling', plan.features.scheduling!.steps[0])).toEqual({ interval_seconds: 5, passes: 2, failure_threshold: 5, on_failure: 'legacy', after_soak: 'rollback' });
    expect(resolveAnalysis(plan, 'scheduling', plan.features.scheduling!.steps[1])).toEqual({ interval_seconds: 5, passes: 2, failure_threshold: 2, on_failure: 'legacy', after_soak: 'rollback' });
  });

  it('names every bad field by its JSON path and value', () => {
    const errors = errorsOf({
      version: 1,
      analysis: { interval_seconds: 0, passes: 1.5, on_failure: 'stable', surprise: 1 },
      webhooks: [
        { name: 'Bad Name', type: 'maybe', url: 'ftp://x', secret: 'the actual secret!' },
        { name: 'ok', type: 'confirm', url: 'http://x', events: ['advance'] },
        { name: 'ok', type: 'notify', url: 'http://x', events: ['explode'], features: ['nope'] },
      ],
      features: {
        scheduling: {
          steps: [
            step({
              manual_judgement: 'yes',
              analysis: { after_soak: 'panic' },
              gates: [
                { kind: 'prometheus', service: 'prometheus', query: '' },
                { kind: 'web', service: 'queue', path: 'stats', json_path: 'a..b', max: 1 },
                { kind: 'invariant', check: 'lost_money', service: 'proxy' },
                { kind: 'budget', users: [] },
                { kind: 'magic', service: 'x' },
              ],
            }),
          ],
        },
      },
    });
    const expected = [
      'analysis.surprise: unknown field',
      'analysis.interval_seconds: must be a number from 0.05 to 3600, got 0',
      'analysis.passes: must be an integer from 1 to 1000, got 1.5',
      'analysis.on_failure: must be "previous" or "legacy", got "stable"',
      'webhooks[0].name: "Bad Name" is not valid',
      'webhooks[0].type: must be "confirm" or "notify", got "maybe"',
      'webhooks[0].url: "ftp://x" is not an http(s) URL',
      'webhooks[0].secret: "the actual secret!" is not valid',
      'webhooks[1].events: a confirm webhook is asked before every step',
      'webhooks[2].name: "ok" is also the name of webhooks[1]',
      'webhooks[2].events[0]: must be one of advance',
      'webhooks[2].features[0]: must be one of the plan\'s features (scheduling), got "nope"',
      'features.scheduling.steps[0].manual_judgement: must be true or false, got "yes"',
      'features.scheduling.steps[0].analysis.after_soak: must be "alert" or "rollback", got "panic"',
      'features.scheduling.steps[0].gates[0].query: must be a PromQL expression',
      'features.scheduling.steps[0].gates[0].max: a prometheus gate needs max, min or both',
      'features.scheduling.steps[0].gates[1].path: "stats" is not valid',
      'features.scheduling.steps[0].gates[1].json_path: "a..b" is not valid',
      'features.scheduling.steps[0].gates[2].service: an invariant gate reads the database',
      'features.scheduling.steps[0].gates[2].check: must be one of lost_events, duplicate_executions, overcommitted_hosts, orphan_droplets, got "lost_money"',
      'features.scheduling.steps[0].gates[3].max_connections: a budget gate needs max_connections, max_polling_queries_per_s or both',
      'features.scheduling.steps[0].gates[3].users: must be a non-empty array',
      'features.scheduling.steps[0].gates[4].kind: must be one of error_rate, latency, shadow_mismatch_rate, gauge, prometheus, web, invariant, budget, got "magic"',
    ];
    for (const e of expected) expect(errors.some((x) => x.startsWith(e)), `${e}\n  in:\n${errors.join('\n')}`).toBe(true);
  });
});
