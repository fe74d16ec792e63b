/**
 * Read consolidation (Vitess's "query consolidator"): while a read is in
 * flight, identical reads wait for its result instead of sending the same
 * query again. A burst of N identical reads costs one query.
 *
 * Admission is bounded like writes: more than `maxInflight` distinct reads
 * at once are refused (`QueueFullError`), waiting on a read already in
 * flight is always allowed (it costs nothing).
 *
 * @example
 *   const reads = createConsolidator({ maxInflight: 64 });
 *   const row = await reads.run(`event:${id}`, () => readEvent(pool, id));
 */
import { QueueFullError } from './group-commit.ts';

export interface Consolidator {
  run<T>(key: string, read: () => Promise<T>): Promise<T>;
  inflight(): number;
}

export function createConsolidator(options: { maxInflight: number; onRead?(consolidated: boolean): void }): Consolidator {
  const pending = new Map<string, Promise<unknown>>();
  return {
    run<T>(key: string, read: () => Promise<T>): Promise<T> {
      const existing = pending.get(key);
      if (existing) {
        options.onRead?.(true);
        return existing as Promise<T>;
      }
      if (pending.size >= options.maxInflight) return Promise.reject(new QueueFullError(pending.size, options.maxInflight));
      options.onRead?.(false);
      const p = read().finally(() => pending.delete(key));
      pending.set(key, p);
      return p;
    },
    inflight: () => pending.size,
  };
}
