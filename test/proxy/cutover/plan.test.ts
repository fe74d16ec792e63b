import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FEATURES } from '../../../lib/cutover/types.ts';
import { loadDefaultPlan, loadPlanFile, planServices, regionRolloutSteps, stepRouting, validatePlan, type CutoverPlan } from '../../../proxy/cutover/plan.ts';

function good(): CutoverPlan {
  return {
    version: 1,
    features: {
      'event-delivery': {
        steps: [
          {
            name: 'nyc1',
            mode: 'canary',
            regions: ['nyc1'],
            soak_seconds: 10,
            gates: [
              { kind: 'gauge', service: 'router', metric: 'router_pending_events', max: 100 },
              { kind: 'error_rate', service: 'proxy', errors: `a_total{status=~'5..'}`, total: 'a_total', max: 0.01 },
            ],
          },
          { name: 'all', mode: 'full', soak_seconds: 0, gates: [] },
        ],
      },
    },
  };
}

/** The error a bad plan throws: it must name the field. */
function errorsOf(mutate: (plan: Record<string, any>) => void): string[] {
  const plan = structuredClone(good()) as Record<string, any>;
  mutate(plan);
  try {
    validatePlan(plan);
  } catch (err) {
    expect((err as { code: string }).code).toBe('CUTOVER_ERR_INVALID_PLAN');
    return (err as { details: { errors: string[] } }).details.errors;
  }
  throw new Error('the plan was accepted');
}

const step0 = 'features.event-delivery.steps[0]';

describe('the cutover plan', () => {
  it('ships a valid default plan covering every feature, event-delivery region by region', () => {
    const plan = loadDefaultPlan();
    expect(Object.keys(plan.features)).toEqual([...FEATURES]);
    const delivery = plan.features['event-delivery']!.steps;
    expect(delivery.some((s) => s.mode === 'shadow')).toBe(false); // deliveries cannot be shadowed
    expect(delivery[0]).toMatchObject({ mode: 'canary', regions: ['nyc1'], percent: 10 });
    expect(delivery.at(-1)!.mode).toBe('full');
    expect(stepRouting(delivery[1]!)).toEqual({ mode: 'canary', percent: 100, regions: ['nyc1'] });
    // The followers take Harpoon's stream at event-writes full: V1's direct placements would never be in it.
    expect(plan.features['event-writes']!.steps.at(-1)!.requires).toEqual({ scheduling: 'full' });
    expect(plan.features.lockdown!.steps[0]!.requires).toEqual({ 'event-delivery': 'full', scheduling: 'full', 'event-writes': 'full', 'event-reads': 'full' });
    expect(planServices(plan)).toEqual(['harpoon', 'monitor', 'proxy', 'router', 'scheduler']);
  });

  it('accepts a good plan and the region rollout helper', () => {
    expect(validatePlan(good())).toBeTruthy();
    const steps = regionRolloutSteps(['nyc1', 'sfo1', 'ams2'], { soakSeconds: 5, gates: [], firstPercent: 10 });
    expect(steps.map((s) => s.name)).toEqual(['nyc1-10pct', 'nyc1', 'nyc1-to-sfo1', 'all-regions']);
    expect(validatePlan({ version: 1, features: { 'event-delivery': { steps } } })).toBeTruthy();
  });

  it('rejects bad plans, naming each bad field', () => {
    const cases: Array<[(p: Record<string, any>) => void, string]> = [
      [(p) => (p.version = 2), 'version: must be 1'],
      [(p) => (p.extra = true), 'plan.extra: unknown field'],
      [(p) => (p.features['Tele Port'] = { steps: [] }), 'features.Tele Port: "Tele Port" is not a valid feature name'],
      [(p) => (p.features['event-delivery'].steps[0].requires = { teleport: 'full' }), `${step0}.requires.teleport: names no feature of this plan`],
      [(p) => (p.features['event-delivery'].steps = []), 'features.event-delivery.steps: must be an array of 1 to 50 steps'],
      [(p) => (p.features['event-delivery'].steps[0].mode = 'blue-green'), `${step0}.mode: must be one of shadow, canary, full`],
      [(p) => (p.features['event-delivery'].steps[0].name = 'Has Spaces'), `${step0}.name: "Has Spaces" is not valid`],
      [(p) => (p.features['event-delivery'].steps[0].name = 'legacy'), `${step0}.name: "legacy" is the implicit step 0`],
      [(p) => (p.features['event-delivery'].steps[1].name = 'nyc1'), 'features.event-delivery.steps[1].name: "nyc1" is also the name of steps[0]'],
      [(p) => (p.features['event-delivery'].steps[0].soak_seconds = -1), `${step0}.soak_seconds: must be an integer from 0`],
      [(p) => (p.features['event-delivery'].steps[0].soak_seconds = '10'), `${step0}.soak_seconds: must be an integer`],
      [(p) => (p.features['event-delivery'].steps[0].percent = 0), `${step0}.percent: must be a number above 0 to 100`],
      [(p) => (p.features['event-delivery'].steps[0].percent = 150), `${step0}.percent: must be a number above 0 to 100`],
      [(p) => delete p.features['event-delivery'].steps[0].regions, `${step0}.percent: a canary step needs percent, regions or both`],
      [(p) => (p.features['event-delivery'].steps[0].regions = ['nyc1', 'nyc1']), `${step0}.regions[1]: "nyc1" appears twice`],
      [(p) => (p.features['event-delivery'].steps[0].regions = ['NYC 1']), `${step0}.regions[0]: "NYC 1" is not valid`],
      [(p) => (p.features['event-delivery'].steps[1].percent = 50), 'features.event-delivery.steps[1].percent: only a canary step takes percent'],
      [(p) => (p.features['event-delivery'].steps[1].mode = 'canary'), 'features.event-delivery.steps[1].mode: the last step must be "full"'],
      [(p) => (p.features['event-delivery'].steps[0].mode = 'full'), `${step0}.mode: "full" may only be the last step`],
      [(p) => (p.features['event-delivery'].steps[0].gates = {}), `${step0}.gates: must be an array`],
      [(p) => (p.features['event-delivery'].steps[0].gates[0].kind = 'vibes'), `${step0}.gates[0].kind: must be one of error_rate, latency, shadow_mismatch_rate, gauge`],
      [(p) => delete p.features['event-delivery'].steps[0].gates[0].max, `${step0}.gates[0].max: a gauge gate needs max, min or both`],
      [(p) => (p.features['event-delivery'].steps[0].gates[0].service = 'Not A Service'), `${step0}.gates[0].service: "Not A Service" is not valid`],
      [(p) => (p.features['event-delivery'].steps[0].gates[0].metric = 'm{a=1}'), `${step0}.gates[0].metric: selector "m{a=1}"`],
      [(p) => (p.features['event-delivery'].steps[0].gates[1].max = 5), `${step0}.gates[1].max: must be a number from 0 to 1, got 5`],
      [(p) => (p.features['event-delivery'].steps[0].gates[1].typo = 1), `${step0}.gates[1].typo: unknown field`],
      [(p) => (p.features['event-delivery'].steps[0].gates[1].errors = `a_total{status=~'('}`), `${step0}.gates[1].errors: selector`],
      [
        (p) => p.features['event-delivery'].steps[0].gates.push({ kind: 'latency', service: 'proxy', histogram: 'h_seconds_bucket', max_seconds: 1 }),
        `${step0}.gates[2].histogram: name the histogram without _bucket`,
      ],
      [
        (p) => p.features['event-delivery'].steps[0].gates.push({ kind: 'latency', service: 'proxy', histogram: 'h_seconds', max_seconds: 1, quantile: 1.5 }),
        `${step0}.gates[2].quantile: must be a number above 0 to 1`,
      ],
      [
        (p) => p.features['event-delivery'].steps[0].gates.push({ kind: 'gauge', name: 'x', service: 'a', metric: 'm', max: 1 }, { kind: 'gauge', name: 'x', service: 'a', metric: 'm', max: 1 }),
        `${step0}.gates[3].name: "x" is also the name of gates[2]`,
      ],
    ];
    for (const [mutate, expected] of cases) {
      const errors = errorsOf(mutate);
      expect(errors.some((e) => e.startsWith(expected)), `${expected}\n  got: ${errors.join('\n  ')}`).toBe(true);
    }
  });

  it('reports every problem at once, and a file that is not JSON', () => {
    const errors = errorsOf((p) => {
      p.version = 3;
      p.features['event-delivery'].steps[0].soak_seconds = 'long';
      p.features['event-delivery'].steps[0].gates[0].max = 'high';
    });
    expect(errors.length).toBeGreaterThanOrEqual(3);
    const dir = mkdtempSync(join(tmpdir(), 'plan-'));
    writeFileSync(join(dir, 'bad.json'), '{ "version": 1, ');
    expect(() => loadPlanFile(join(dir, 'bad.json'))).toThrow(/not valid JSON/);
  });
});
