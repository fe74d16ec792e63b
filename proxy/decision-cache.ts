import { goesNew } from '../lib/cutover/decide.ts';
import type { Routing } from '../lib/cutover/types.ts';

/** Remembered routing answers per feature (a hypervisor fleet or an active customer base fits). */
const DECISION_CACHE_SIZE = 100_000;

/**
 * goesNew, remembered per feature state: a key's answer cannot change until
 * the state does (its sticky bucket is a SHA-256, ~6 µs, on every request
 * otherwise). Per-request keys (routes without stickyBy) are not remembered.
 *
 * @example
 *   const decide = createDecisionCache();
 *   decide('event-delivery', routing, String(serverId), 'nyc1', false); // true: this key goes new
 */
export function createDecisionCache(size = DECISION_CACHE_SIZE): (feature: string, routing: Routing, key: string, region: string | undefined, oneOff: boolean) => boolean {
  const decisions = new Map<string, { state: Routing; version: unknown; mode: string; percent: number; regions: string | null; answers: Map<string, boolean> }>();
  return function decide(feature: string, routing: Routing, key: string, region: string | undefined, oneOff: boolean): boolean {
    if (oneOff) return goesNew(feature, routing, { key, region });
    const version = (routing as { version?: unknown }).version;
    let memo = decisions.get(feature);
    const same =
      memo !== undefined &&
      (version === undefined ? memo.state === routing : memo.version === version) &&
      memo.mode === routing.mode &&
      memo.percent === routing.percent &&
      memo.regions === (routing.regions?.join(',') ?? null);
    if (!same) {
      memo = { state: routing, version, mode: routing.mode, percent: routing.percent, regions: routing.regions?.join(',') ?? null, answers: new Map() };
      decisions.set(feature, memo);
    }
    memo = memo!;
    const k = region === undefined ? key : `${region}\u0000${key}`;
    let answer = memo.answers.get(k);
    if (answer === undefined) {
      answer = goesNew(feature, routing, { key, region });
      if (memo.answers.size >= size) memo.answers.clear();
      memo.answers.set(k, answer);
    }
    return answer;
  };
}
