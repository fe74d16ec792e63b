import { FILTERS, type FilterId } from './filters.ts';
import type { RankedHost, RankResult } from './rank.ts';

const ORDER = new Map(FILTERS.map((f, i) => [f.id, i]));
const REASON = new Map(FILTERS.map((f) => [f.id, f.reason]));

/**
 * "200 not enough memory, 12 too many errors": rejections, largest first
 * (ties in filter order), in the words of each filter's `reason`.
 */
export function formatRejections(rejected: Partial<Record<FilterId, number>>): string {
  return (Object.entries(rejected) as Array<[FilterId, number]>)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || ORDER.get(a[0])! - ORDER.get(b[0])!)
    .map(([id, n]) => `${n} ${REASON.get(id)}`)
    .join(', ');
}

export interface ConflictNote {
  host: string;
  /** generation: another replica placed there first; capacity: the ledger had no room; lock: deadlock victim. */
  kind: 'generation' | 'capacity' | 'lock';
}

/**
 * The one-line explanation stored with every decision, in the style of
 * Kubernetes' "0/N nodes are available: …".
 *
 * @example
 *   // none fits
 *   "0/412 hosts available: 200 not enough memory, 12 too many errors."
 *   // placed
 *   "placed on nyc1-hv0002 (v1-compatible score 60000): 180/200 hosts available; rejected: 12 too many errors, 8 metrics stale."
 */
export function summarize(
  result: Pick<RankResult, 'outcome' | 'policy' | 'rejected' | 'hosts_total' | 'hosts_available' | 'user_hosts'>,
  extra: { chosen?: RankedHost; attempts?: number; conflicts?: ConflictNote[] } = {},
): string {
  const rejections = formatRejections(result.rejected);
  const counts = `${result.hosts_available}/${result.hosts_total} hosts available`;
  let text: string;
  if (extra.chosen) {
    const fallback = extra.chosen.tier === 1 ? ", fallback: it already holds this customer's droplets" : '';
    text = `placed on ${extra.chosen.host.name} (${result.policy} score ${extra.chosen.score}${fallback}): ${counts}`;
    if (result.user_hosts > 0) text += ` (${result.user_hosts} already hold this customer's droplets)`;
    text += rejections ? `; rejected: ${rejections}.` : '.';
  } else {
    text = `${counts}: ${rejections || 'no host in this region'}.`;
    if (result.outcome === 'wait') text += ' Waiting: a host is only busy or not seen recently.';
  }
  const conflicts = extra.conflicts ?? [];
  if ((extra.attempts ?? 1) > 1 || conflicts.length > 0) {
    text += ` Attempts ${extra.attempts ?? 1}, conflicts ${conflicts.length}`;
    text += conflicts.length ? ` (${conflicts.slice(0, 5).map((c) => `${c.host}: ${c.kind}`).join(', ')}${conflicts.length > 5 ? ', …' : ''}).` : '.';
  }
  return text;
}
