import type { HarpoonClient, HarpoonEvent, Subscription } from '../harpoon/client.ts';
import { followEvents } from '../harpoon/follow.ts';
import { V1_BUSY_TYPES } from '../domain/busy-types.ts';
import type { Logger } from '../lib/logger.ts';

/** An unscheduled create V2 has heard of, and when it may be tried again. */
export interface QueuedEvent {
  event: HarpoonEvent;
  created_ms: number;
  /** Date.now() before which the event is not taken (it waits: hosts busy, or a reservation in flight elsewhere). */
  retryAt: number;
}

export interface HarpoonFeedOptions {
  client: HarpoonClient;
  /** Region slugs the replica schedules. */
  regions: string[];
  /** Every state of a busy-type event (create, restore, reboots) as it changes: the busy lists follow it. */
  onBusy(event: HarpoonEvent): void;
  /** Called before a catch-up: what was known of the busy lists is replaced by what follows. */
  onReset(): void;
  /** A new unscheduled create arrived (wake the loop). */
  onQueued?(): void;
  logger: Logger;
}

const BUSY = new Set<string>(V1_BUSY_TYPES);

/**
 * V2's queue and busy lists in Harpoon mode, with no MySQL statement: a
 * catch-up `GET /v1/events` of the pending/running events of the busy types
 * (unscheduled creates are among them), then the stream from the cursor the
 * first page returned. The stream is filtered by type, not by
 * `unscheduled=true`: a placement no longer matches "unscheduled", so that
 * stream would never say that another replica placed an event, and the
 * busy lists need the placements and completions anyway.
 *
 * @example
 *   const feed = createHarpoonFeed({ client, regions: ['nyc1'], onBusy, onReset, logger });
 *   await feed.start(); feed.take((q) => true, 100); … feed.close();
 */
export function createHarpoonFeed(options: HarpoonFeedOptions) {
  const queue = new Map<number, QueuedEvent>();
  let sub: Subscription | undefined;
  let closed = false;
  let ready = false;

  function apply(event: HarpoonEvent): void {
    if (!options.regions.includes(event.region)) return;
    if (event.type === 'create' && event.status === 'pending' && event.server_id === null) {
      const known = queue.get(event.id);
      if (known) known.event = event;
      else {
        queue.set(event.id, { event, created_ms: Date.parse(event.created_at), retryAt: 0 });
        options.onQueued?.();
      }
    } else {
      queue.delete(event.id);
    }
    if (BUSY.has(event.type)) options.onBusy(event);
  }

  return {
    queue,
    apply,
    ready: () => ready,
    /** Catch-up, then the stream from the first page's cursor (nothing committed after it is missed). */
    async start(): Promise<void> {
      const again = (): void => {
        if (closed) return;
        ready = false;
        this.start().catch((e: Error) => {
          options.logger.error({ err: e.message }, 'could not read the state again after a too-old cursor; retrying');
          setTimeout(again, 1000).unref();
        });
      };
      const restart = (err: Error) => {
        // Away longer than Harpoon's log keeps: resuming would skip changes, so the state is read again.
        options.logger.warn({ err: err.message, code: 'HARPOON_ERR_CURSOR_TOO_OLD' }, 'harpoon stream cursor too old; reading the state again');
        again();
      };
      options.onReset();
      queue.clear();
      const { caughtUp, cursor, subscription } = await followEvents({
        client: options.client,
        query: { region: options.regions, type: [...V1_BUSY_TYPES] },
        catchUpQuery: { status: ['pending', 'running'] },
        onEvent: apply,
        onDisconnect: (err) => options.logger.warn({ err: err?.message }, 'harpoon stream dropped; resuming from its cursor'),
        onTooOld: restart,
        isClosed: () => closed,
      });
      if (!subscription) return;
      sub = subscription;
      ready = true;
      options.logger.info({ cursor, queued: queue.size, busy: caughtUp.length - queue.size }, 'harpoon feed caught up');
    },
    /** Up to `limit` queued events, oldest first, that are due and pass `accept`. */
    take(accept: (q: QueuedEvent) => boolean, limit: number, now = Date.now()): QueuedEvent[] {
      const out: QueuedEvent[] = [];
      // Map order is insertion order, which is id order except after a catch-up merge: sort the due ones.
      for (const q of queue.values()) if (q.retryAt <= now && accept(q)) out.push(q);
      out.sort((a, b) => a.event.id - b.event.id);
      return out.slice(0, limit);
    },
    /** The event is not taken again before `ms` from now (0: at once). */
    defer(id: number, ms: number): void {
      const q = queue.get(id);
      if (q) q.retryAt = Date.now() + ms;
    },
    /** Whether anything is due now (the loop skips the batch, and every statement, when not). */
    hasDue(accept: (q: QueuedEvent) => boolean, now = Date.now()): boolean {
      for (const q of queue.values()) if (q.retryAt <= now && accept(q)) return true;
      return false;
    },
    close(): void {
      closed = true;
      ready = false;
      sub?.close();
    },
  };
}

export type HarpoonFeed = ReturnType<typeof createHarpoonFeed>;
