import { StranglerError } from '../lib/errors.ts';
import type { CutoverController } from '../proxy/cutover/controller.ts';
import { CHAOS_FEATURES, type ChaosFeature } from './schedule.ts';

export interface CutoverChange {
  feature: ChaosFeature;
  action: 'advance' | 'rollback';
  /** advanced / rolled-back, or refused / failed with the error code (gates failing, soak, MySQL down). */
  outcome: 'advanced' | 'rolled-back' | 'refused' | 'failed' | 'nothing-to-do';
  code?: string;
  /** The step the feature is on afterwards, when it could be read. */
  step?: string;
  message?: string;
}

/**
 * Moves the cutover as an operator under pressure would: `advance` and
 * `rollback` (one step back) on demand, each reported with its outcome
 * instead of thrown, and `forward()`, which advances the first feature
 * that is not at its last step (event-delivery, scheduling, then Harpoon's
 * event-writes and event-reads when the plan has them).
 *
 * @example
 *   const driver = createCutoverDriver(controller);
 *   await driver.change('scheduling', 'rollback');   // { outcome: 'rolled-back', step: 'shadow' }
 */
export function createCutoverDriver(controller: CutoverController, actor = 'chaos') {
  const features = CHAOS_FEATURES.filter((f) => controller.plan.features[f] !== undefined);
  async function stepName(feature: ChaosFeature): Promise<string | undefined> {
    return controller.statusOf(feature).then(
      (s) => `${s.step}/${s.steps} ${s.step_name}`,
      () => undefined,
    );
  }

  async function change(feature: ChaosFeature, action: 'advance' | 'rollback', reason = 'npm run chaos'): Promise<CutoverChange> {
    try {
      const status = await controller.statusOf(feature);
      if (action === 'advance') {
        if (status.step >= status.steps) return { feature, action, outcome: 'nothing-to-do', step: `${status.step}/${status.steps} ${status.step_name}` };
        await controller.advance(feature, actor, reason, { expectedVersion: status.version });
      } else {
        if (status.step === 0) return { feature, action, outcome: 'nothing-to-do', step: `0/${status.steps} ${status.step_name}` };
        await controller.rollback(feature, { to: 'previous', actor, reason, expectedVersion: status.version });
      }
      const step = await stepName(feature);
      return { feature, action, outcome: action === 'advance' ? 'advanced' : 'rolled-back', ...(step ? { step } : {}) };
    } catch (err) {
      const code = err instanceof StranglerError ? err.code : ((err as { code?: string }).code ?? 'ERROR');
      const refused = typeof code === 'string' && code.startsWith('CUTOVER_ERR_');
      const step = await stepName(feature);
      return { feature, action, outcome: refused ? 'refused' : 'failed', code, message: (err as Error).message.slice(0, 300), ...(step ? { step } : {}) };
    }
  }

  return {
    /** The chaos features the plan has, in forward order. */
    features,
    change,
    /** Advances the first feature not at its last step; undefined when every feature is at the end. */
    async forward(): Promise<CutoverChange | undefined> {
      for (const feature of features) {
        const s = await controller.statusOf(feature).catch(() => undefined);
        if (!s) return undefined;
        if (s.step < s.steps) return change(feature, 'advance', 'npm run chaos: moving the cutover forward');
      }
      return undefined;
    },
    /** Every chaos feature's step, as "step/steps name". */
    async positions(): Promise<Record<string, string>> {
      const out: Record<string, string> = {};
      for (const f of features) out[f] = (await stepName(f)) ?? 'unknown';
      return out;
    },
  };
}

export type CutoverDriver = ReturnType<typeof createCutoverDriver>;
