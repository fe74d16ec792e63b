/**
 * The region's open events in Harpoon mode, kept in memory from Harpoon's
 * stream instead of polled from MySQL: a catch-up read of the region's
 * pending and running events (GET /v1/events, whose `cursor` is the stream
 * position read before the rows), then the stream from that cursor, so
 * nothing committed in between is missed. A change may show in both; every
 * change is applied as "the event is now in this state", so a repeat is
 * harmless.
 */
import type { HarpoonClient, Subscription } from '../harpoon/client.ts';
import { followEvents } from '../harpoon/follow.ts';
import type { Change, HarpoonEvent } from '../harpoon/types.ts';

export interface HarpoonFeedOptions {
  client: HarpoonClient;
  region: string;
  /** Every event whose state moved (catch-up rows included), after the index is updated. */
  onEvent(event: HarpoonEvent): void;
  /** Each streamed change: for the lag metric. */
  onChange?(change: Change): void;
  onDisconnect?(): void;
}

export interface HarpoonFeed {
  /** Catch-up then stream; resolves once the catch-up is in memory. Returns the running events it found. */
  start(): Promise<HarpoonEvent[]>;
  close(): void;
  /** Placed, unclaimed events of a host, oldest first. */
  pendingOf(serverId: number): HarpoonEvent[];
  /** Claimed, not finished events of a host, oldest first. */
  runningOf(serverId: number): HarpoonEvent[];
  /** An open event's status as this feed knows it (undefined: finished, or never seen). */
  statusOf(eventId: number): 'pending' | 'running' | undefined;
  /** Applies a state learnt elsewhere (a claim's answer) as if streamed. */
  apply(event: HarpoonEvent): void;
  /** Drops an event from the index (a claim refused as an illegal transition: it is already finished). */
  forget(eventId: number): void;
  /** Hosts with placed, unclaimed events. */
  pendingHosts(): IterableIterator<number>;
  pendingCount(): number;
  cursor(): number | undefined;
  connected(): boolean;
}

/** Per-host sets of event ids, in insertion order (ids rise, so oldest first as events arrive). */
class HostIndex {
  private readonly byHost = new Map<number, Map<number, HarpoonEvent>>();
  private count = 0;
  set(event: HarpoonEvent): void {
    const host = event.server_id!;
    let m = this.byHost.get(host);
    if (!m) this.byHost.set(host, (m = new Map()));
    if (!m.has(event.id)) this.count++;
    m.set(event.id, event);
  }
  delete(event: Pick<HarpoonEvent, 'id'>, host: number | null): void {
    if (host === null) return;
    const m = this.byHost.get(host);
    if (m?.delete(event.id)) {
      this.count--;
      if (m.size === 0) this.byHost.delete(host);
    }
  }
  of(host: number): HarpoonEvent[] {
    const m = this.byHost.get(host);
    return m ? [...m.values()].sort((a, b) => a.id - b.id) : [];
  }
  size(): number {
    return this.count;
  }
  hosts(): IterableIterator<number> {
    return this.byHost.keys();
  }
}

/**
 * @example
 *   const feed = createHarpoonFeed({ client, region: 'nyc1', onEvent: (e) => kick(e.server_id) });
 *   await feed.start(); feed.pendingOf(7); … feed.close();
 */
export function createHarpoonFeed(options: HarpoonFeedOptions): HarpoonFeed {
  const pending = new HostIndex();
  const running = new HostIndex();
  /** Where each open event is filed, so a change finds it whatever its new state. */
  const filed = new Map<number, { host: number; status: 'pending' | 'running' }>();
  let sub: Subscription | undefined;
  let closed = false;

  function apply(event: HarpoonEvent): void {
    if (event.region !== options.region) return;
    const was = filed.get(event.id);
    // A replayed older change (the catch-up already showed the claim) must not make a claimed event pending again.
    if (was?.status === 'running' && event.status === 'pending') return;
    if (was) {
      (was.status === 'pending' ? pending : running).delete(event, was.host);
      filed.delete(event.id);
    }
    if (event.server_id !== null && (event.status === 'pending' || event.status === 'running')) {
      (event.status === 'pending' ? pending : running).set(event);
      filed.set(event.id, { host: event.server_id, status: event.status });
    }
    options.onEvent(event);
  }

  function forget(eventId: number): void {
    const was = filed.get(eventId);
    if (!was) return;
    (was.status === 'pending' ? pending : running).delete({ id: eventId }, was.host);
    filed.delete(eventId);
  }

  /**
   * Away longer than Harpoon's log keeps (HARPOON_ERR_CURSOR_TOO_OLD): the open events are read again, and
   * one filed but no longer listed finished while the stream could not tell us. Retried until it works.
   */
  function refollow(): void {
    if (closed) return;
    follow().then(
      (open) => {
        const still = new Set(open.map((e) => e.id));
        for (const id of [...filed.keys()]) if (!still.has(id)) forget(id);
      },
      () => {
        options.onDisconnect?.();
        setTimeout(refollow, 1000).unref();
      },
    );
  }

  async function follow(): Promise<HarpoonEvent[]> {
    // The stream carries every status change of the region; the catch-up reads only the open ones.
    const followed = await followEvents({
      client: options.client,
      query: { region: [options.region] },
      catchUpQuery: { status: ['pending', 'running'] },
      onEvent: apply,
      ...(options.onChange ? { onChange: options.onChange } : {}),
      onDisconnect: () => options.onDisconnect?.(),
      onTooOld: () => {
        options.onDisconnect?.();
        refollow();
      },
      isClosed: () => closed,
    });
    sub = followed.subscription;
    return sub ? followed.caughtUp : [];
  }

  return {
    async start() {
      const caughtUp = await follow();
      return caughtUp.filter((e) => e.status === 'running' && e.server_id !== null);
    },
    close() {
      closed = true;
      sub?.close();
    },
    statusOf: (eventId) => filed.get(eventId)?.status,
    pendingOf: (id) => pending.of(id),
    runningOf: (id) => running.of(id),
    apply,
    forget,
    pendingHosts: () => pending.hosts(),
    pendingCount: () => pending.size(),
    cursor: () => sub?.cursor(),
    connected: () => sub?.connected() ?? false,
  };
}
