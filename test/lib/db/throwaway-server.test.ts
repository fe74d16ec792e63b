import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startThrowawayServer, throwawayAvailable, type ServerDeath, type ThrowawayServer } from '../../../lib/db/throwaway-server.ts';
import { silentLogger } from '../../../lib/logger.ts';

const settled = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

/**
 * A throwaway server that dies on its own (a crash, the kernel's OOM killer) is reported with how it
 * died and the memory it held; the deaths its owner causes (stop, crashAndRestart) are not. And the
 * OOM killer is told to take it first.
 */
describe.skipIf(!throwawayAvailable())('throwaway server: its own death', () => {
  const servers: ThrowawayServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('reports a kill it did not ask for with the signal and the peak memory; a restart and a stop are not deaths', async () => {
    const server = await startThrowawayServer({ maxConnections: 50, logger: silentLogger() });
    servers.push(server);
    expect(readFileSync(`/proc/${server.pid}/oom_score_adj`, 'utf8').trim()).toBe('1000');
    // The peak is sampled every 2 s while the server lives.
    await new Promise((r) => setTimeout(r, 2_500));

    const restarted = await server.crashAndRestart();
    expect(await settled(server.died, 500)).toBe('pending');
    expect(readFileSync(`/proc/${restarted.pid}/oom_score_adj`, 'utf8').trim()).toBe('1000');

    process.kill(restarted.pid, 'SIGKILL');
    const death = (await settled(server.died, 10_000)) as ServerDeath | 'pending';
    expect(death).not.toBe('pending');
    expect(death).toMatchObject({ pid: restarted.pid, code: null, signal: 'SIGKILL' });
    // A MariaDB holds tens of MB resident at least: the reading is of the server, not a placeholder.
    expect((death as ServerDeath).peakRssBytes).toBeGreaterThan(20 * 2 ** 20);

    const quiet = await startThrowawayServer({ maxConnections: 50, logger: silentLogger() });
    servers.push(quiet);
    await quiet.stop();
    expect(await settled(quiet.died, 500)).toBe('pending');
  }, 180_000);
});
