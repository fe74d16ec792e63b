import { createRandom } from '../stack/seed/prng.ts';
import { FEATURES, type FeatureName } from '../domain/features.ts';

/** What a fault kills or restarts. */
export const FAULT_KINDS = ['event-router', 'proxy-worker', 'scheduler-v2', 'harpoon', 'mysql'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The cutover features a chaos run moves, in the order it moves them forward (Harpoon's three only when the stack runs Harpoon, lockdown only with `lockdown`). */
export const CHAOS_FEATURES = FEATURES;
export type ChaosFeature = FeatureName;

export interface PlannedFault {
  /** Order in the run, from 1. */
  index: number;
  kind: FaultKind;
  /** Seconds after traffic starts; the fault fires then or once the previous fault has recovered, whichever is later. */
  at_s: number;
  /** Which instance, as an index into the component's list at fault time (modulo its length). */
  pick: number;
  /** The cutover change made while the component is down. */
  cutover: { action: 'advance' | 'rollback'; feature: ChaosFeature };
  /** How long after the fault the cutover change is made (ms). */
  cutover_after_ms: number;
}

/**
 * The fault schedule of a chaos run: each kind twice — once with a cutover
 * `advance` in the middle of it and once with a `rollback` — in an order
 * and at moments drawn from `seed`, spread over the middle of the run (the
 * first 10% lets traffic settle, the last 15% lets the last fault recover
 * before traffic stops). The same seed and duration give the same schedule.
 *
 * @example
 *   planFaults({ seed: 1, durationS: 300 })   // 10 faults: [{ index: 1, kind: 'mysql', at_s: 41.7, … }, …]
 */
export function planFaults(options: { seed: number; durationS: number; kinds?: readonly FaultKind[]; features?: readonly ChaosFeature[] }): PlannedFault[] {
  const rand = createRandom(options.seed * 7919 + 17);
  const kinds = options.kinds ?? FAULT_KINDS;
  const slots: Array<{ kind: FaultKind; action: 'advance' | 'rollback' }> = kinds.flatMap((kind) => [
    { kind, action: 'advance' as const },
    { kind, action: 'rollback' as const },
  ]);
  // Fisher–Yates with the seeded generator.
  for (let i = slots.length - 1; i > 0; i--) {
    const j = rand.int(0, i);
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  const from = options.durationS * 0.1;
  const span = options.durationS * 0.75;
  // One fault per equal window, at a random moment inside it: spread out, never two at once by plan.
  const window = span / Math.max(1, slots.length);
  return slots.map((slot, i) => ({
    index: i + 1,
    kind: slot.kind,
    at_s: Math.round((from + i * window + rand.next() * window * 0.6) * 10) / 10,
    pick: rand.int(0, 1000),
    cutover: { action: slot.action, feature: rand.pick(options.features ?? CHAOS_FEATURES) },
    cutover_after_ms: rand.int(50, 400),
  }));
}
