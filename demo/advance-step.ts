import { StranglerError } from '../lib/errors.ts';
import type { CutoverController, FeatureStatus } from '../proxy/cutover/controller.ts';
import type { Progress } from './progress.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Advances a feature one step as an operator would: waits out the soak,
 * and retries an advance its gates refuse (too few samples yet, say) for
 * `refusedTimeoutMs` (default 3 min: a busy machine is slow to gather
 * samples) before giving up with the refusal.
 *
 * @example
 *   await advanceStep({ controller, feature: 'scheduling', status: await controller.statusOf('scheduling'), progress, label: 'scheduler-v2' });
 */
export async function advanceStep(options: {
  controller: CutoverController;
  feature: string;
  /** The status the advance starts from (its version guards against a concurrent change). */
  status: FeatureStatus;
  progress: Progress;
  /** Prefix of progress lines (the demo stage). */
  label: string;
  refusedTimeoutMs?: number;
}): Promise<void> {
  const { controller, feature, status, progress, label } = options;
  const refusedDeadline = Date.now() + (options.refusedTimeoutMs ?? 180_000);
  for (;;) {
    try {
      await controller.advance(feature, 'demo', `npm run demo: ${label} stage`, { expectedVersion: status.version });
      return;
    } catch (err) {
      const code = err instanceof StranglerError ? err.code : '';
      if (code === 'CUTOVER_ERR_SOAKING') {
        const remaining = Number((err as { details?: { remaining_seconds?: number } }).details?.remaining_seconds ?? 1);
        progress.update(`${label}: ${feature} step ${status.step} (${status.step_name}) soaking, ${remaining}s left`);
        await sleep(Math.max(200, remaining * 1000 - 500));
        continue;
      }
      if (code === 'CUTOVER_ERR_GATE_FAILED' && Date.now() < refusedDeadline) {
        progress.update(`${label}: advance refused (${(err as Error).message}); retrying`);
        await sleep(1000);
        continue;
      }
      throw err;
    }
  }
}

/**
 * Advances a feature through every remaining step of the controller's plan
 * (advanceStep for each), calling `after` once each step is in place (to
 * wait for followers, say). Returns the steps taken with their durations.
 *
 * @example
 *   const steps = await advanceThrough({ controller, feature: 'event-writes', progress, label: 'harpoon' });
 */
export async function advanceThrough(options: {
  controller: CutoverController;
  feature: string;
  progress: Progress;
  label: string;
  refusedTimeoutMs?: number;
  after?: (status: FeatureStatus) => Promise<void>;
}): Promise<Array<{ step: number; name: string; seconds: number }>> {
  const { controller, feature, progress, label } = options;
  const done: Array<{ step: number; name: string; seconds: number }> = [];
  for (;;) {
    const status = await controller.statusOf(feature);
    if (status.step >= status.steps) return done;
    const began = Date.now();
    await advanceStep({ controller, feature, status, progress, label, ...(options.refusedTimeoutMs !== undefined ? { refusedTimeoutMs: options.refusedTimeoutMs } : {}) });
    const after = await controller.statusOf(feature);
    await options.after?.(after);
    const seconds = Math.round((Date.now() - began) / 100) / 10;
    progress.log(`${label}: advanced ${feature} to step ${after.step}/${after.steps} ${after.step_name} (${seconds}s)`);
    done.push({ step: after.step, name: after.step_name, seconds });
  }
}
