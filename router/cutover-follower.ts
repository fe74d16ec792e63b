/**
 * The router's view of the cutover: `event-delivery` (which hosts are
 * routed here) and `event-writes` (which source owns events), read from a
 * state source when one is given, else from `cutover_features` over the
 * router's pool. Invariant it keeps: every stream the hub holds is routed
 * here under the current state.
 */
import type { Pool } from 'mysql2/promise';
import { parseFeatureRow, type FeatureRowState } from '../lib/cutover/feature-row.ts';
import type { FeatureState } from '../lib/cutover/types.ts';
import type { Logger } from '../lib/logger.ts';
import { EVENT_DELIVERY, EVENT_WRITES } from '../domain/features.ts';
import { routedToRouter, type EventDeliveryState } from '../lib/cutover/event-delivery.ts';
import type { RouterStateSource } from './options.ts';
import { fetchFeatureRows } from './queries.ts';
import type { StreamHub } from './streams.ts';

export interface CutoverFollower {
  /** Subscribes to the state source (a change calls `onChange`) and starts it. */
  start(): Promise<void>;
  /** Reads the state (from the state source's memory unless `fetchNow`), then applies routing. Concurrent calls share one read. */
  refresh(fetchNow?: boolean): Promise<void>;
  /** The `event-delivery` state, once read. */
  delivery(): EventDeliveryState | undefined;
  /** The `event-writes` state. */
  writes(): FeatureRowState;
  /** When the read that produced the current state started (ms). */
  since(): number;
  routed(serverId: number): boolean;
  /** Switches away every stream no longer routed here, unless claims are on the wire (then once they settle). */
  applyRouting(): void;
  close(): Promise<void>;
}

/** A FeatureState (from a state source) in the shape the router decides on. */
function rowState(state: FeatureState | undefined): FeatureRowState {
  if (!state) return parseFeatureRow(undefined);
  return parseFeatureRow({ mode: state.mode, percent: state.percent, regions: state.regions === null ? null : JSON.stringify(state.regions), version: state.version });
}

/**
 * @example
 *   const cutover = createCutoverFollower({ region, pool, hub, log, countQuery, claiming: () => false, onChange: wake });
 *   await cutover.start(); await cutover.refresh(false); cutover.routed(7);
 */
export function createCutoverFollower(options: {
  region: string;
  pool: Pool;
  stateSource: RouterStateSource | undefined;
  hub: StreamHub;
  log: Logger;
  countQuery(query: string): void;
  /** Whether the current source has claims on the wire. */
  claiming(): boolean;
  /** A state source reported a change of a feature the router follows. */
  onChange(): void;
}): CutoverFollower {
  const { region, pool, stateSource, hub, log } = options;
  /** Until the state source has started (its server may come up after us), the state is read from MySQL. */
  let stateStarted = false;
  let stateRetryAt = 0;
  let state: EventDeliveryState | undefined;
  let writes: FeatureRowState = parseFeatureRow(undefined);
  let stateSince = 0;
  let loading: Promise<void> | undefined;
  let appliedKey: string | undefined;
  let unsubscribe: (() => void) | undefined;

  /** A failed start is retried every 2 s from the poll; meanwhile the state comes from MySQL (same rows). */
  async function startStateSource(): Promise<void> {
    try {
      await stateSource!.start();
      stateStarted = true;
      log.info('reading the cutover state from its state source');
    } catch (err) {
      if (stateRetryAt === 0) log.warn({ err: (err as Error).message }, 'the cutover state source is not reachable yet; reading the state from MySQL meanwhile');
      stateRetryAt = Date.now() + 2000;
    }
  }

  /** With a state source: its current states (refreshed over HTTP when `fetchNow`); else one MySQL statement. */
  async function readStates(fetchNow: boolean): Promise<{ delivery: FeatureRowState; writes: FeatureRowState }> {
    if (stateSource && !stateStarted && Date.now() >= stateRetryAt) await startStateSource();
    if (stateSource && stateStarted) {
      if (fetchNow) await stateSource.refresh();
      return { delivery: rowState(stateSource.get(EVENT_DELIVERY)), writes: rowState(stateSource.get(EVENT_WRITES)) };
    }
    options.countQuery('state');
    const rows = await fetchFeatureRows(pool, [EVENT_DELIVERY, EVENT_WRITES]);
    return { delivery: parseFeatureRow(rows.get(EVENT_DELIVERY)), writes: parseFeatureRow(rows.get(EVENT_WRITES)) };
  }

  function routed(serverId: number): boolean {
    return state !== undefined && routedToRouter(state, serverId, region);
  }

  /**
   * A change re-checks every stream, once. Never while a claim is in flight:
   * the claimed events are written first, then the switch, so every claim
   * made for a host reaches it before it leaves.
   */
  function applyRouting(): void {
    if (!state || state.key === appliedKey) return;
    // The source calls claimsSettled() → applyRouting() when its claims are answered.
    if (options.claiming()) return;
    appliedKey = state.key;
    let switched = 0;
    for (const stream of [...hub.streams.values()]) {
      if (!routed(stream.serverId)) {
        hub.switchAway(stream, state.version);
        switched++;
      }
    }
    if (switched > 0) log.info({ switched, version: state.version }, 'hypervisors no longer routed here: switched to the god query');
  }

  return {
    async start() {
      if (!stateSource) return;
      unsubscribe = stateSource.onChange((change) => {
        if (change.feature === EVENT_DELIVERY || change.feature === EVENT_WRITES) options.onChange();
      });
      await startStateSource();
    },
    refresh(fetchNow = true) {
      loading ??= (async () => {
        try {
          const started = Date.now();
          const read = await readStates(fetchNow);
          state = read.delivery;
          writes = read.writes;
          // A state source's memory is as fresh as its last read, not as this call.
          stateSince = stateStarted && !fetchNow ? (stateSource?.lastReadAt?.getTime() ?? 0) : started;
          applyRouting();
        } finally {
          loading = undefined;
        }
      })();
      return loading;
    },
    delivery: () => state,
    writes: () => writes,
    since: () => stateSince,
    routed,
    applyRouting,
    async close() {
      unsubscribe?.();
      await stateSource?.close().catch(() => {});
    },
  };
}
