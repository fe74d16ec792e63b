import type { RoutingMode } from '../../lib/cutover/types.ts';
import type { GateReading } from './gates.ts';

/** A feature's state about to move (advance or rollback). */
export interface StepChange {
  feature: string;
  fromStep: number;
  toStep: number;
  fromMode: RoutingMode;
  toMode: RoutingMode;
  actor: string;
  /**
   * The operator said to go on although the effect's preflight refuses (lockdown: users other than Harpoon
   * still touch event data). The effect still runs it, and says what was overridden in its outcome's note.
   */
  overridePreflight?: boolean;
}

/** What an effect tells the history about a change it made (lockdown: what its preflight saw, overridden or not). */
export interface EffectOutcome {
  note?: string;
}

/**
 * Something a step does besides routing traffic: `lockdown`'s REVOKE of
 * every grant on `events` but Harpoon's, and the GRANTs its rollback puts
 * back. The controller runs `apply` before the state row moves, so a
 * failure refuses the change and leaves the state where it was; `apply`
 * must be idempotent because a crash between it and the state change is
 * retried by running both again.
 *
 * @example
 *   createCutoverAdmin({ …, effects: { lockdown: createLockdownEffect({ admin, database }) } });
 */
export interface FeatureEffect {
  /**
   * Makes the change, or refuses it: a StranglerError with a 4xx status is a refusal (the history records
   * "advance-refused" and the caller gets it as is); anything else is a failure (CUTOVER_ERR_EFFECT_FAILED).
   */
  apply(change: StepChange): Promise<void | EffectOutcome>;
  /** What the effect holds now, for `strangler cutover status` (lockdown: who holds which grants on events). */
  describe?(): Promise<unknown>;
  /**
   * A gate every advance of every feature must pass while the effect holds (lockdown: no grant on event
   * data outside its policy, `lockdown-drift`): the server no longer being what the cutover state says
   * is no state to move on from. Undefined when there is nothing to judge (lockdown does not hold).
   * It never rolls anything back.
   */
  gate?(): Promise<GateReading | undefined>;
}

/** Feature name → its effect (this system's: `lockdown`). */
export type FeatureEffects = Partial<Record<string, FeatureEffect>>;
