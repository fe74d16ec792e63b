/**
 * A real main.ts for test/lib/process/run-main.test.ts: an HTTP server run
 * through runMain. RUN_MAIN_FAIL=start makes start() fail with a coded
 * error, RUN_MAIN_FAIL=uncoded with a plain Error. It prints `listening <port>`
 * once started and `closed` when close() ran.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StranglerError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/logger.ts';
import { runMain } from '../../lib/process/run-main.ts';

const logger = createLogger({ name: 'run-main-child' });

void runMain({
  name: 'test service',
  logger,
  internalCode: 'TEST_ERR_INTERNAL',
  create() {
    const server = createServer((_req, res) => res.end('ok'));
    return {
      async start() {
        if (process.env.RUN_MAIN_FAIL === 'start') throw new StranglerError('TEST_ERR_START', 'the test service refused to start');
        if (process.env.RUN_MAIN_FAIL === 'uncoded') throw new Error('something without a code');
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        return { port: (server.address() as AddressInfo).port };
      },
      async close() {
        await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
        process.stdout.write('closed\n');
      },
    };
  },
  started: ({ port }) => process.stdout.write(`listening ${port}\n`),
});
