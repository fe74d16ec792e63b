import { schedulingMoved } from '../lib/cutover/scheduling.ts';
import type { Routing } from '../lib/cutover/types.ts';
import { readFollowed, type CutoverFollower } from './cutover-follow.ts';
import type { Inventory } from './inventory.ts';
import type { CommitFence } from './placement.ts';

/** Why the last fence refused: the scheduling cutover took the region back, or event-writes went to full. */
export type FenceReason = 'scheduling' | 'event-writes';

/** The regions of `ids` that a routing hands to V2: none in legacy and shadow. */
export function movedRegions(inventory: Inventory, routing: Routing, ids: readonly number[]): number[] {
  return ids.filter((id) => schedulingMoved(routing, inventory.regionSlug(id) ?? ''));
}

/**
 * The commit fences of a following replica. Every commit re-reads the
 * followed cutover rows under a shared lock (cutover-follow.ts readFollowed):
 * a placement commits either before a switch (and the other side sees it)
 * or after it (and only if it is still allowed). Direct placements (MySQL
 * mode) also need event-writes below full: after the switch to full a
 * follower reads through Harpoon and would never see a direct write.
 * Harpoon-mode reservations check scheduling only.
 *
 * @example
 *   const fences = createFences({ follower, followScheduling: true, inventory });
 *   await commitRound(db, replica, intents, reserved, fences.direct);
 *   if (fences.reason() === 'event-writes') …
 */
export function createFences(deps: { follower: CutoverFollower; followScheduling: boolean; inventory: Inventory }) {
  let reason: FenceReason | undefined;
  const make =
    (direct: boolean): CommitFence =>
    async (trx) => {
      const state = await readFollowed(trx, { lock: true });
      deps.follower.remember(state);
      reason = undefined;
      if (direct && state.eventWrites.mode === 'full') {
        reason = 'event-writes';
        return () => false;
      }
      if (!deps.followScheduling) return () => true;
      const regionIds = deps.inventory.regionIds();
      const inScope = regionIds ? new Set(regionIds) : undefined;
      return (id) => {
        const ok = (!inScope || inScope.has(id)) && movedRegions(deps.inventory, state.scheduling, [id]).length === 1;
        if (!ok) reason = 'scheduling';
        return ok;
      };
    };
  return {
    /** For direct placements (MySQL mode). */
    direct: make(true),
    /** For Harpoon-mode reservations. */
    harpoon: make(false),
    /** Why the last fence refused (undefined: it did not). */
    reason: (): FenceReason | undefined => reason,
  };
}
