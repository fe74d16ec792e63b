/**
 * Group commit: requests that arrive while a batch is being written, or
 * within `maxDelayMs` of the first one, are written together in one
 * transaction of at most `maxRows` items. At most `concurrency` batches
 * are in flight, so the next batch forms while one commits: under load
 * batches grow by themselves, and an idle system pays at most
 * `maxDelayMs` of latency.
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
  /**
   * Batches written at the same time at most (default 1). With more than
   * one, the next batch forms and starts while another commits; `write`
   * must then be safe to run concurrently.
   */
  concurrency?: number;
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
  /** When it was admitted (ms). */
  at: number;
  resolve(out: O[]): void;
  reject(err: unknown): void;
}

export function createGroupCommit<I, O>(options: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const concurrency = options.concurrency ?? 1;
  const queue: Array<Job<I, O>> = [];
  let queued = 0;
  let inflight = 0;
  let running = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const drained: Array<() => void> = [];

  /** A batch starts when it is full, or when its oldest item has waited maxDelayMs (at once while draining). */
  function schedule(): void {
    if (queue.length === 0 || running >= concurrency) return;
    const wait = closed ? 0 : options.maxDelayMs - (Date.now() - queue[0]!.at);
    if (queued >= options.maxRows || wait <= 0) {
      clearTimeout(timer);
      timer = undefined;
      flush();
    } else {
      timer ??= setTimeout(() => {
        timer = undefined;
        flush();
        schedule();
      }, wait);
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

  function flush(): void {
    if (running >= concurrency || queue.length === 0) return;
    const jobs: Array<Job<I, O>> = [];
    let rows = 0;
    // Whole requests only: a request's items always commit together.
    while (queue.length > 0 && (jobs.length === 0 || rows + queue[0]!.items.length <= options.maxRows)) {
      const job = queue.shift()!;
      rows += job.items.length;
      jobs.push(job);
    }
    queued -= rows;
    inflight += rows;
    running++;
    void (async () => {
      try {
        await writeJobs(jobs);
      } catch (err) {
        if (jobs.length > 1 && options.isolateFailures !== false) {
          for (const job of jobs) await writeJobs([job]).catch((e: unknown) => job.reject(e));
        } else {
          for (const job of jobs) job.reject(err);
        }
      } finally {
        inflight -= rows;
        running--;
        if (queue.length > 0) {
          // What queued during this batch may already have waited long enough.
          schedule();
        } else if (running === 0) {
          for (const d of drained.splice(0)) d();
        }
      }
    })();
  }

  return {
    submit(items) {
      if (closed) return Promise.reject(new ClosedError('the writer is closing'));
      if (queued + items.length > options.maxQueue) return Promise.reject(new QueueFullError(queued, options.maxQueue));
      return new Promise<O[]>((resolve, reject) => {
        queue.push({ items, at: Date.now(), resolve, reject });
        queued += items.length;
        schedule();
      });
    },
    depth: () => queued + inflight,
    drain() {
      closed = true;
      if (running === 0 && queue.length === 0) return Promise.resolve();
      clearTimeout(timer);
      timer = undefined;
      schedule();
      return new Promise<void>((r) => drained.push(r));
    },
  };
}
