/**
 * This replica's view of `event_log`: the contiguous prefix it knows
 * (`head`), the newest entries in memory (a ring), and the listeners that
 * get every entry exactly once, in cursor order.
 *
 * How entries arrive, and why no id is ever skipped or repeated:
 * - Writers hold `harpoon_lock` from allocating log ids to COMMIT, so ids
 *   commit in increasing order across every replica. When entry N is known
 *   committed, every entry below N is committed too (or is a hole left by a
 *   rollback, which never appears).
 * - `append(entries)` takes committed, consecutive entries (this replica's
 *   batch, or a peer's, pushed to us). If they start right after `head` they
 *   are applied as they are; if there is a gap, they wait up to `gapWaitMs`
 *   (20 ms) for the entries before them to be pushed too, then the gap is
 *   read from the log (it is committed, since the entries after it are).
 * - `catchUp()` reads everything after `head` under the log lock: used at
 *   start, and when a peer's push connection drops (it may have committed
 *   entries it could not push before it died).
 * Every operation runs in one sequence, so `head` only moves forward and
 * listeners see entries in order. None of this polls: reads happen only
 * because something committed or a peer went away.
 */
import type { Pool } from 'mysql2/promise';
import { readLog, readLogLocked, readLogTail } from './store.ts';
import type { Change } from './types.ts';

export interface ChangeLog {
  /** Loads the newest `ringSize` entries and sets `head` (start-up). */
  init(): Promise<void>;
  append(entries: Change[]): Promise<void>;
  catchUp(): Promise<void>;
  head(): number;
  /** Entries with cursor > after, from memory, or undefined when memory does not reach back that far. */
  fromMemory(after: number): Change[] | undefined;
  onAppend(listener: (entries: Change[]) => void): void;
}

const PAGE = 1000;

export function createChangeLog(pool: Pool, options: { ringSize: number; gapWaitMs?: number; onQuery?(name: string): void }): ChangeLog {
  let head = 0;
  /** Entries in cursor order; the oldest are dropped past ringSize. */
  let ring: Change[] = [];
  let ringStart = 0; // index of the first live element (amortised shift)
  const listeners: Array<(entries: Change[]) => void> = [];
  let chain: Promise<void> = Promise.resolve();

  function sequence(work: () => Promise<void>): Promise<void> {
    const next = chain.then(work);
    chain = next.catch(() => {});
    return next;
  }

  function push(entries: Change[]): void {
    const fresh = entries.filter((e) => e.cursor > head);
    if (fresh.length === 0) return;
    for (const e of fresh) ring.push(e);
    head = fresh.at(-1)!.cursor;
    const live = ring.length - ringStart;
    if (live > options.ringSize) {
      ringStart += live - options.ringSize;
      if (ringStart > options.ringSize) {
        ring = ring.slice(ringStart);
        ringStart = 0;
      }
    }
    for (const l of listeners) l(fresh);
  }

  /** Entries that arrived after a gap, by their first cursor, until the gap is filled. */
  const pending = new Map<number, Change[]>();
  let gapTimer: NodeJS.Timeout | undefined;
  const gapWaitMs = options.gapWaitMs ?? 20;

  function drainPending(): void {
    // A pending run waits while a gap is before it; once its first entry is at most head + 1 it is applied (push
    // drops what is at or below head). Passes repeat while one moved something.
    for (let moved = true; moved; ) {
      moved = false;
      for (const [first, entries] of pending) {
        if (first > head + 1) continue;
        pending.delete(first);
        push(entries);
        moved = true;
      }
    }
  }

  function armGapTimer(): void {
    if (gapTimer) return;
    gapTimer = setTimeout(() => {
      gapTimer = undefined;
      void sequence(async () => {
        if (pending.size === 0) return;
        await fill(Math.min(...pending.keys()) - 1);
        drainPending();
        if (pending.size > 0) armGapTimer();
      }).catch(() => armGapTimer());
    }, gapWaitMs);
    gapTimer.unref();
  }

  /** Reads (head, upto] page by page; every entry in it is committed. Nothing to read when head >= upto. */
  async function fill(upto: number): Promise<void> {
    while (head < upto) {
      options.onQuery?.('log_gap');
      const page = await readLog(pool, head, upto, PAGE);
      push(page);
      // A short page is the last: ids between its entries and upto are holes (rolled-back batches).
      if (page.length < PAGE) head = Math.max(head, upto);
    }
  }

  return {
    async init() {
      await sequence(async () => {
        options.onQuery?.('log_tail');
        const { head: top } = await readLogLocked(pool, Number.MAX_SAFE_INTEGER, 0);
        const tail = await readLogTail(pool, options.ringSize);
        ring = tail.filter((e) => e.cursor <= top);
        ringStart = 0;
        head = top;
      });
    },
    append(entries) {
      if (entries.length === 0) return Promise.resolve();
      return sequence(async () => {
        // At or right after head (push drops what it already has); past a gap, held back.
        if (entries[0]!.cursor <= head + 1) {
          push(entries);
          drainPending();
          return;
        }
        // A gap: usually another batch's entries are a moment behind (a peer's push, or our other batch's
        // COMMIT answer). Wait for them briefly; past gapWaitMs, read the gap from the log.
        pending.set(entries[0]!.cursor, entries);
        armGapTimer();
      });
    },
    catchUp() {
      return sequence(async () => {
        options.onQuery?.('log_locked');
        const { changes, head: top } = await readLogLocked(pool, head, PAGE);
        push(changes);
        await fill(top);
        drainPending();
      });
    },
    head: () => head,
    fromMemory(after) {
      if (after >= head) return [];
      // Memory holds every entry after coverFrom (ids between two entries are holes).
      const first = ring[ringStart];
      const coverFrom = first ? first.cursor - 1 : head;
      if (after < coverFrom) return undefined;
      // Binary search for the first entry with cursor > after.
      let lo = ringStart;
      let hi = ring.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ring[mid]!.cursor > after) hi = mid;
        else lo = mid + 1;
      }
      return ring.slice(lo);
    },
    onAppend(listener) {
      listeners.push(listener);
    },
  };
}
