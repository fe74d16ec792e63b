import type { Knee, SweepFailure, SweepRow } from './types.ts';

/**
 * Where each series leaves its flat part: the first size at which its
 * delivery latency (p99, or p50 where the sample holds no p99) exceeds
 * `factor` times the smallest size's plus `slackMs`, or Cloud's error rate
 * passes `errorRate`, or the run failed. Deliberately plain, so a reader can
 * check a marked knee against the table by eye.
 *
 * @example
 *   findKnees(rows, failures); // [{ series: 'migration/legacy', size: 5000, reason: 'p99 4,100 ms > 2 × 380 ms + 250 ms' }]
 */
export function findKnees(rows: readonly SweepRow[], failures: readonly SweepFailure[] = [], options: { factor?: number; slackMs?: number; errorRate?: number } = {}): Knee[] {
  const factor = options.factor ?? 2;
  const slackMs = options.slackMs ?? 250;
  const maxErrorRate = options.errorRate ?? 0.05;
  const bySeries = new Map<string, SweepRow[]>();
  for (const row of rows) bySeries.set(row.series, [...(bySeries.get(row.series) ?? []), row]);
  // A stage that failed at every size measured has no rows, but its breaking point is still a finding.
  for (const f of failures) {
    const series = f.variant === 'migration' ? `migration/${f.stage ?? 'legacy'}` : f.variant;
    if (!bySeries.has(series)) bySeries.set(series, []);
  }
  const knees: Knee[] = [];
  for (const [series, seriesRows] of bySeries) {
    const sorted = [...seriesRows].sort((a, b) => a.size - b.size);
    const latency = (r: SweepRow) => r.latency_ms.p99 ?? r.latency_ms.p50;
    const base = sorted.find((r) => latency(r) !== null);
    const baseMs = base ? latency(base)! : null;
    // A run that failed at a stage breaks that stage's series (the stages before it were measured); one that
    // failed before any stage breaks every series of its variant.
    const failed = failures
      .filter((f) => series === f.variant || (series.startsWith(`${f.variant}/`) && (f.stage === undefined || series === `${f.variant}/${f.stage}`)))
      .map((f) => f.size);
    let knee: Knee | undefined;
    for (const r of sorted) {
      const ms = latency(r);
      if (r.cloud_error_rate > maxErrorRate) knee = { series, size: r.size, reason: `Cloud error rate ${(r.cloud_error_rate * 100).toFixed(1)}% > ${maxErrorRate * 100}%` };
      else if (baseMs !== null && ms !== null && r !== base && ms > factor * baseMs + slackMs) {
        knee = { series, size: r.size, reason: `${r.latency_ms.p99 !== null ? 'p99' : 'p50'} ${Math.round(ms)} ms > ${factor} × ${Math.round(baseMs)} ms + ${slackMs} ms` };
      }
      if (knee) break;
    }
    const firstFailure = failed.length ? Math.min(...failed) : undefined;
    if (firstFailure !== undefined && (!knee || firstFailure < knee.size)) knee = { series, size: firstFailure, reason: 'the run failed at this size' };
    if (knee) knees.push(knee);
  }
  return knees.sort((a, b) => a.series.localeCompare(b.series));
}
