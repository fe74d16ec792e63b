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
