import type { Knex } from 'knex';
import { readMysqlSnapshot } from '../lib/metrics/mysql-snapshot.ts';
import type { StageName, TimelineSample } from './report-types.ts';

/**
 * Samples the server once a second: connections by user (PROCESSLIST,
 * limited to the run's schema) and Questions per second. Every number in
 * the report's chart comes from here, that is from the server itself.
 */
export function startSampler(db: Knex, options: { database: string; intervalMs?: number; stage: () => StageName }) {
  const samples: TimelineSample[] = [];
  let lastQuestions: { at: number; value: number } | undefined;
  let busy = false;
  let stopped: Promise<void> | undefined;
  const take = async () => {
    if (busy) return;
    busy = true;
    try {
      const snap = await readMysqlSnapshot(db, { database: options.database });
      const at = snap.at.getTime();
      const questions = snap.status.questions ?? 0;
      const qps = lastQuestions ? ((questions - lastQuestions.value) * 1000) / Math.max(1, at - lastQuestions.at) : 0;
      lastQuestions = { at, value: questions };
      samples.push({
        t: snap.at.toISOString(),
        stage: options.stage(),
        connections_total: snap.processlistTotal,
        by_user: snap.byUser,
        questions_per_s: Math.round(qps),
      });
    } catch {
      // A missed sample (server restarting) is a gap in the chart, not a failed run.
    } finally {
      busy = false;
    }
  };
  void take();
  const timer = setInterval(take, options.intervalMs ?? 1000);
  return {
    samples,
    /** The sample with most connections between two instants. */
    peak(from: Date, to: Date): TimelineSample | undefined {
      let best: TimelineSample | undefined;
      for (const s of samples) {
        const t = Date.parse(s.t);
        if (t < from.getTime() || t > to.getTime()) continue;
        if (!best || s.connections_total > best.connections_total) best = s;
      }
      return best;
    },
    /** Takes a last sample and stops; idempotent. */
    stop(): Promise<void> {
      stopped ??= (async () => {
        clearInterval(timer);
        while (busy) await new Promise((r) => setTimeout(r, 10));
        await take();
      })();
      return stopped;
    },
  };
}
