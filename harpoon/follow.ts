import type { EventQuery, HarpoonClient, Subscription } from './client.ts';
import type { Change, HarpoonEvent } from './types.ts';

export interface FollowOptions {
  client: Pick<HarpoonClient, 'listEvents' | 'subscribe'>;
  /** Which events: the filter of both the catch-up read and the stream. */
  query: EventQuery;
  /**
   * Narrows the catch-up only, typically to the open statuses: the stream must still carry the changes
   * that take an event out of the set (done, error), or the set would never shrink.
   */
  catchUpQuery?: EventQuery;
  /** The catch-up's rows, then each streamed change's event, in order. A row may come again in a change: apply each as "the event is now in this state". */
  onEvent(event: HarpoonEvent): void;
  /** Each streamed change, before its event goes to onEvent (a lag metric, say). */
  onChange?(change: Change): void;
  /** The stream dropped; the subscription resumes from its cursor by itself. */
  onDisconnect?(err: Error | undefined): void;
  /** The stream's cursor fell behind what Harpoon keeps (HARPOON_ERR_CURSOR_TOO_OLD): the subscription stopped; follow again. */
  onTooOld?(err: Error): void;
  /** Asked once the catch-up is read: true (the caller closed meanwhile) stops before anything is applied or subscribed. */
  isClosed?(): boolean;
  /** Rows per catch-up page (default 1000). */
  pageSize?: number;
}

export interface Following {
  /** The catch-up's rows, as read (already given to onEvent). */
  caughtUp: HarpoonEvent[];
  /** The stream position the catch-up was read at: the stream resumes from here. */
  cursor: number | undefined;
  /** Undefined when isClosed() said so. */
  subscription: Subscription | undefined;
}

/**
 * Catch-up then stream, the way every Harpoon consumer keeps a set of events
 * in memory without polling: page through GET /v1/events, remembering the
 * `cursor` of the first page (read before any of its rows), then subscribe
 * to the stream from that cursor with the same filter. Nothing committed
 * between the read and the subscription is missed; a change may show in
 * both, so consumers apply states, not deltas. Used by the Event Router's
 * Harpoon source (router/harpoon-feed.ts) and Scheduler V2's Harpoon queue
 * (scheduler/harpoon-feed.ts).
 *
 * @example
 *   const { subscription } = await followEvents({ client, query: { region: ['nyc1'] }, catchUpQuery: { status: ['pending', 'running'] }, onEvent: index });
 *   … subscription?.close();
 */
export async function followEvents(options: FollowOptions): Promise<Following> {
  const { client, query } = options;
  const limit = options.pageSize ?? 1000;
  let after: number | undefined;
  let cursor: number | undefined;
  const caughtUp: HarpoonEvent[] = [];
  for (;;) {
    const page = await client.listEvents({ ...query, ...options.catchUpQuery, limit, ...(after !== undefined ? { after } : {}) });
    cursor ??= page.cursor;
    caughtUp.push(...page.events);
    if (page.next_after === null || page.events.length === 0) break;
    after = page.next_after;
  }
  if (options.isClosed?.()) return { caughtUp, cursor, subscription: undefined };
  for (const event of caughtUp) options.onEvent(event);
  const subscription = client.subscribe({
    ...query,
    cursor,
    onChange(change) {
      options.onChange?.(change);
      options.onEvent(change.event);
    },
    ...(options.onDisconnect ? { onDisconnect: options.onDisconnect } : {}),
    ...(options.onTooOld ? { onTooOld: options.onTooOld } : {}),
  });
  return { caughtUp, cursor, subscription };
}
