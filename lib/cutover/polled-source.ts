import { EventEmitter } from 'node:events';
import type { Logger } from '../logger.ts';
import { FEATURES, type FeatureState, type FeatureStateChange, type ObservableFeatureStateSource } from './types.ts';

/** A polled feature-state source: what the MySQL reader and the HTTP follower share. */
export interface PolledStateSource extends ObservableFeatureStateSource {
  /** Reads once (throws if it cannot), then every `intervalMs`. */
  start(): Promise<void>;
  /** Reads now; resolves once states and change events are up to date. */
  refresh(): Promise<void>;
  /** Stops polling and waits for a read in flight; idempotent. */
  stop(): Promise<void>;
  on(event: 'change', listener: (change: FeatureStateChange) => void): this;
  /** A read failed; the source keeps the last states it read and tries again next interval. */
  on(event: 'poll-error', listener: (err: Error) => void): this;
  off(event: 'change' | 'poll-error', listener: (...args: never[]) => void): this;
  /** When the states were last read successfully, or undefined before the first read. */
  readonly lastReadAt: Date | undefined;
}

/** Step 0 of a feature: what a feature without a row (or a record) reads as. */
export function legacyFeatureState(feature: string): FeatureState {
  return { feature, step: 0, stepName: 'legacy', mode: 'legacy', percent: 0, regions: null, paused: false, version: 0, updatedAt: new Date(0).toISOString() };
}

/**
 * The polling loop of a feature-state follower: reads every feature's
 * state with `read`, keeps the last good read when one fails (a follower
 * must not flap back to legacy because its source blinked), emits one
 * change per new version, and logs failures sparingly (the first, then
 * every 60th).
 *
 * @example
 *   const source = createPolledStateSource({ read: () => fetchStates(), intervalMs: 1000, logger, unavailable: 'cannot read cutover state' });
 */
export function createPolledStateSource(options: {
  read: () => Promise<FeatureState[]>;
  intervalMs: number;
  logger: Logger;
  /** Log line for failed reads. */
  unavailable: string;
  /** Log line when reads work again. */
  recovered: string;
}): PolledStateSource {
  const { intervalMs, logger } = options;
  const emitter = new EventEmitter();
  const states = new Map<string, FeatureState>();
  let loaded = false;
  let lastReadAt: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inflight: Promise<void> | undefined;
  let failures = 0;

  async function load(): Promise<void> {
    const read = await options.read();
    const changes: FeatureStateChange[] = [];
    for (const state of read) {
      const previous = states.get(state.feature);
      if (previous && previous.version === state.version && previous.mode === state.mode) continue;
      states.set(state.feature, state);
      changes.push({ feature: state.feature, state, previous: loaded ? (previous ?? legacyFeatureState(state.feature)) : undefined });
    }
    loaded = true;
    lastReadAt = new Date();
    if (failures > 0) logger.info({ failures }, options.recovered);
    failures = 0;
    for (const change of changes) {
      try {
        emitter.emit('change', change);
      } catch (err) {
        logger.error({ err, feature: change.feature }, 'a cutover change listener threw');
      }
    }
  }

  function refresh(): Promise<void> {
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      refresh().then(schedule, (err: Error) => {
        failures++;
        if (failures === 1 || failures % 60 === 0) logger.warn({ err: err.message, failures }, options.unavailable);
        if (emitter.listenerCount('poll-error') > 0) emitter.emit('poll-error', err);
        schedule();
      });
    }, intervalMs);
    timer.unref();
  }

  const source: PolledStateSource = {
    get(feature) {
      return states.get(feature) ?? ((FEATURES as readonly string[]).includes(feature) ? legacyFeatureState(feature) : undefined);
    },
    all() {
      const known = FEATURES.map((f) => source.get(f)!);
      return [...known, ...[...states.values()].filter((s) => !(FEATURES as readonly string[]).includes(s.feature))];
    },
    onChange(listener) {
      emitter.on('change', listener);
      return () => emitter.off('change', listener);
    },
    async start() {
      if (stopped) throw new Error('this cutover state source is closed');
      await refresh();
      if (!timer) schedule();
    },
    refresh,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await inflight?.catch(() => {});
    },
    on(event: string, listener: (...args: never[]) => void) {
      emitter.on(event, listener as (...args: unknown[]) => void);
      return source;
    },
    off(event: string, listener: (...args: never[]) => void) {
      emitter.off(event, listener as (...args: unknown[]) => void);
      return source;
    },
    get lastReadAt() {
      return lastReadAt;
    },
  };
  return source;
}
