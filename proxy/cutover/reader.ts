import { parseMysqlUrl } from '../../lib/db/config.ts';
import { invalidOption } from '../../lib/errors.ts';
import { createCutoverStateReader, type CutoverStateReader } from './state-store.ts';

/**
 * The cutover state reader as a `stateFactory` for proxy cluster workers
 * (proxy/cluster.ts): options cross the process boundary as JSON, so the
 * database comes as a URL, and each worker opens its own one-connection
 * pool. Resolves once the first read succeeded; `close()` ends the pool.
 *
 * @example
 *   createProxyCluster({ …, stateFactory: { module: new URL('./cutover/reader.ts', import.meta.url).href, export: 'createReader', options: { mysqlUrl } } });
 */
export async function createReader(options: { mysqlUrl: string; intervalMs?: number }): Promise<CutoverStateReader> {
  if (typeof options?.mysqlUrl !== 'string') throw invalidOption('stateFactory.options.mysqlUrl', '(not shown)', 'a mysql:// URL of a user that can SELECT cutover_features');
  const reader = createCutoverStateReader({ db: parseMysqlUrl(options.mysqlUrl), ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}) });
  try {
    await reader.start();
  } catch (err) {
    await reader.close();
    throw err;
  }
  return reader;
}
