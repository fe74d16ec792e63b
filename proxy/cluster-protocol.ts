import type { ProxyOptions } from './create-proxy.ts';
import type { ShadowSample } from './shadow.ts';

/**
 * Where a cluster worker gets its feature states: a module it imports and a
 * factory it calls with `options` (functions and live sources cannot cross
 * processes, module names and JSON can). The factory may be async and its
 * result may have `close()`.
 *
 * @example
 *   { module: new URL('./static-state.ts', import.meta.url).href, export: 'createStaticState', options: { 'droplet-api': { mode: 'full' } } }
 */
export interface StateFactoryRef {
  /** An absolute path or a file: URL of an ES module (TypeScript is fine: workers run with tsx). */
  module: string;
  /** The export to call; `default` when omitted. */
  export?: string;
  /** JSON passed to the factory. */
  options?: unknown;
}

/** The proxy options a worker can receive: plain JSON, no registry, logger, state, callback or engine. */
export type WorkerProxyOptions = Omit<ProxyOptions, 'state' | 'registry' | 'logger' | 'onShadowSample' | 'identity' | 'engine'>;

export type ToWorker =
  | { type: 'proxy:config'; options: WorkerProxyOptions; stateFactory: StateFactoryRef; logLevel: string }
  | { type: 'proxy:stop' };

export type FromWorker =
  | { type: 'proxy:hello' }
  | { type: 'proxy:listening'; port: number }
  | { type: 'proxy:failed'; message: string }
  | { type: 'proxy:sample'; sample: ShadowSample };
