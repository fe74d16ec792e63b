import { captureBaseline, windowedServices, type Baseline, type Scraper } from './gates.ts';
import type { PlanStep } from './plan.ts';
import type { FeatureRecord } from './state-store.ts';

/**
 * Counter snapshots of a soaked step (by feature, for one version of its
 * row), so that a step may also be judged on its last soak_seconds alone:
 * an outage long past (a router killed and back) would otherwise fail the
 * step for good, since the step's window keeps its failures. Kept in
 * memory: a replica without them judges from the step's start only.
 */
export function createRecentWindows(scraper: Scraper) {
  const recent = new Map<string, { version: number; snapshots: Baseline[] }>();
  return {
    /** Takes a snapshot of the step's windowed series and drops those no longer needed. */
    async remember(name: string, step: PlanStep, record: FeatureRecord): Promise<void> {
      if (!windowedServices(step).length) return;
      const snapshot = await captureBaseline(step, scraper);
      if (Object.keys(snapshot).length === 0) return;
      const entry = recent.get(name);
      const snapshots = entry?.version === record.version ? entry.snapshots : [];
      snapshots.push(snapshot);
      // Snapshot times are this process's clock (scrape.at), so the cutoff is too. Keep the newest
      // snapshot that is already a soak old (the recent window's start) and every newer one.
      const cutoff = Date.now() - step.soak_seconds * 1000;
      const oldEnough = snapshots.filter((b) => Object.values(b).every((v) => Date.parse(v.at) <= cutoff)).length;
      recent.set(name, { version: record.version, snapshots: snapshots.slice(Math.max(0, oldEnough - 1)) });
    },
    /** The start of the last soak: the step's baseline moved up to the newest snapshot at least a soak old, or undefined if none is. */
    start(name: string, step: PlanStep, record: FeatureRecord): Baseline | undefined {
      const entry = recent.get(name);
      if (!record.baseline || entry?.version !== record.version) return undefined;
      const cutoff = Date.now() - step.soak_seconds * 1000;
      const out: Baseline = { ...record.baseline };
      let moved = false;
      for (const snap of entry.snapshots) {
        for (const [service, b] of Object.entries(snap)) {
          const current = out[service];
          if (current && Date.parse(b.at) <= cutoff && Date.parse(b.at) > Date.parse(current.at)) {
            out[service] = b;
            moved = true;
          }
        }
      }
      return moved ? out : undefined;
    },
  };
}
