/**
 * Group commit: requests that arrive while a batch is being written, or
 * within `maxDelayMs` of the first one, are written together in one
 * transaction of at most `maxRows` items. One batch is in flight at a time
 * (the writer holds one connection), so the next batch forms while the
 * current one commits: under load batches grow by themselves, and an idle
 * system pays at most `maxDelayMs` of latency.
 *
 * Admission is bounded: a request that would take the queue past
 * `maxQueue` items is refused at once (`QueueFullError`) and nothing of it
 * is queued. A request that was admitted is either committed whole or
 * rejected whole: its items always go into the same transaction.
 *
 * @example
 *   const gc = createGroupCommit({ maxDelayMs: 2, maxRows: 500, maxQueue: 5000, write: (items) => writeBatch(items) });
 *   const [result] = await gc.submit([item]);
 */
export interface GroupCommitOptions<I, O> {
  maxDelayMs: number;
  maxRows: number;
  maxQueue: number;
  /** Writes one batch; returns one outcome per item, in order. Throwing fails every request of the batch. */
  write(items: I[]): Promise<O[]>;
  /**
   * When a batch of several requests fails: written again one request at a
   * time, so one bad request (a foreign key naming no row) fails alone.
   * Default true.
   */
  isolateFailures?: boolean;
  onBatch?(rows: number, requests: number): void;
}

export interface GroupCommit<I, O> {
  submit(items: I[]): Promise<O[]>;
  /** Items admitted and not yet committed. */
  depth(): number;
  /** Resolves when every admitted request has been written; later submits are refused. */
  drain(): Promise<void>;
}

export class QueueFullError extends Error {
  constructor(readonly depth: number, readonly limit: number) {
    super(`write queue holds ${depth} items (limit ${limit})`);
  }
}

export class ClosedError extends Error {}

interface Job<I, O> {
  items: I[];
  resolve(out: O[]): void;
  reject(err: unknown): void;
}

export function createGroupCommit<I, O>(options: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const queue: Array<Job<I, O>> = [];
  let queued = 0;
  let inflight = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  const drained: Array<() => void> = [];

  function schedule(): void {
    if (running || queue.length === 0) return;
    if (queued >= options.maxRows) {
      clearTimeout(timer);
      timer = undefined;
      void flush();
    } else {
      timer ??= setTimeout(() => {
        timer = undefined;
        void flush();
      }, options.maxDelayMs);
    }
  }

  async function writeJobs(jobs: Array<Job<I, O>>): Promise<void> {
    const items = jobs.flatMap((j) => j.items);
    options.onBatch?.(items.length, jobs.length);
    const out = await options.write(items);
    let k = 0;
    for (const job of jobs) {
      job.resolve(out.slice(k, k + job.items.length));
      k += job.items.length;
    }
  }

  function flush(): Promise<void> {
    if (running) return running;
    const jobs: Array<Job<I, O>> = [];
    let rows = 0;
    // Whole requests only: a request's items always commit together.
    while (queue.length > 0 && (jobs.length === 0 || rows + queue[0]!.items.length <= options.maxRows)) {
      const job = queue.shift()!;
      rows += job.items.length;
      jobs.push(job);
    }
    queued -= rows;
    inflight = rows;
    running = (async () => {
      try {
        await writeJobs(jobs);
      } catch (err) {
        if (jobs.length > 1 && options.isolateFailures !== false) {
          for (const job of jobs) await writeJobs([job]).catch((e: unknown) => job.reject(e));
        } else {
          for (const job of jobs) job.reject(err);
        }
      } finally {
        inflight = 0;
        running = undefined;
        if (queue.length > 0) {
          // What queued during this batch has already waited: write it at once.
          clearTimeout(timer);
          timer = undefined;
          void flush();
        } else {
          for (const d of drained.splice(0)) d();
        }
      }
    })();
    return running;
  }

  return {
    submit(items) {
      if (closed) return Promise.reject(new ClosedError('the writer is closing'));
      if (queued + items.length > options.maxQueue) return Promise.reject(new QueueFullError(queued, options.maxQueue));
      return new Promise<O[]>((resolve, reject) => {
        queue.push({ items, resolve, reject });
        queued += items.length;
        schedule();
      });
    },
    depth: () => queued + inflight,
    drain() {
      closed = true;
      if (!running && queue.length === 0) return Promise.resolve();
      if (!running) {
        clearTimeout(timer);
        timer = undefined;
        void flush();
      }
      return new Promise<void>((r) => drained.push(r));
    },
  };
}
