/**
 * Entry point of one proxy cluster worker (forked by cluster.ts through
 * node:cluster, run with `--import tsx`): a full proxy with its own state
 * source, listening on the port every worker shares. Talks to the primary
 * over IPC only; logs go to stderr.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { FeatureStateSource } from '../lib/cutover/types.ts';
import { createLogger } from '../lib/logger.ts';
import type { FromWorker, ToWorker } from './cluster-protocol.ts';
import { createProxy, type Proxy } from './create-proxy.ts';

type StateWithClose = FeatureStateSource & { close?: () => unknown };

let proxy: Proxy | undefined;
let state: StateWithClose | undefined;
let stopping = false;

function send(message: FromWorker): void {
  if (process.connected) process.send?.(message);
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    try {
      await proxy?.close();
      await state?.close?.();
    } catch {
      // exiting anyway
    }
  }
  process.exit(code);
}

async function start(msg: Extract<ToWorker, { type: 'proxy:config' }>): Promise<void> {
  const logger = createLogger({ name: 'proxy-worker', level: msg.logLevel, destination: process.stderr });
  try {
    const mod = (await import(msg.stateFactory.module)) as Record<string, unknown>;
    const factory = mod[msg.stateFactory.export ?? 'default'];
    if (typeof factory !== 'function') {
      throw new Error(`${msg.stateFactory.module} has no function export "${msg.stateFactory.export ?? 'default'}"`);
    }
    state = (await factory(msg.stateFactory.options)) as StateWithClose;
    const registry = new Registry();
    // Answers the primary's metric requests (prom-client's cluster protocol) with this worker's registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([registry]);
    proxy = createProxy({
      ...msg.options,
      state,
      registry,
      logger,
      identity: `${cluster.worker?.id ?? 0}/${process.pid}`,
      onShadowSample: (sample) => send({ type: 'proxy:sample', sample }),
    });
    const { port } = await proxy.start();
    send({ type: 'proxy:listening', port });
  } catch (err) {
    logger.error({ err }, 'proxy worker failed to start');
    send({ type: 'proxy:failed', message: (err as Error).message });
    await stop(1);
  }
}

process.on('message', (msg: ToWorker) => {
  if (msg?.type === 'proxy:config') void start(msg);
  else if (msg?.type === 'proxy:stop') void stop(0);
});
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
// The primary is gone: nobody restarts or stops this worker any more.
process.on('disconnect', () => void stop(0));
send({ type: 'proxy:hello' });
