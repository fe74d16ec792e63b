import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { databaseDeathMessage } from '../../demo/database-death.ts';
import { createProgress } from '../../demo/progress.ts';
import { runDemo } from '../../demo/run-demo.ts';
import { throwawayAvailable } from '../../lib/db/throwaway-server.ts';
import { waitFor } from '../helpers/seeded.ts';

const GB = 2 ** 30;

describe('databaseDeathMessage', () => {
  it('names the OOM killer when a SIGKILLed server held most of the machine, and what to run instead of the 2016 legacy', () => {
    const message = databaseDeathMessage(
      { pid: 14334, code: null, signal: 'SIGKILL', peakRssBytes: 21.4 * GB },
      { hypervisors: 15_000, threadHandling: 'one-thread-per-connection', godQuery: '2016', totalMemBytes: 23.5 * GB },
    );
    expect(message).toBe(
      "the demo's database server (pid 14334) was killed by SIGKILL after holding up to 21.4 GB of this machine's 23.5 GB: the kernel's OOM killer (dmesg names it). " +
        '15,000 agents each running the 2016 god query on a thread of its own need more memory than this machine has; that is the 2016 failure this demo reproduces. ' +
        'To watch the migration at this size run --god-query optimized --thread-handling pool-of-threads, or fewer --hypervisors',
    );
  });

  it('does not blame memory for a crash that held little, nor the 2016 legacy when it was not running', () => {
    const message = databaseDeathMessage(
      { pid: 9, code: 1, signal: null, peakRssBytes: 0.3 * GB },
      { hypervisors: 200, threadHandling: 'pool-of-threads', godQuery: 'optimized', totalMemBytes: 23.5 * GB },
    );
    expect(message).toBe("the demo's database server (pid 9) exited with code 1 after holding up to 0.3 GB of this machine's 23.5 GB. the report was not written; the log above has what each service saw");
    expect(databaseDeathMessage({ pid: 9, code: null, signal: 'SIGKILL', peakRssBytes: null }, { hypervisors: 200, threadHandling: 'pool-of-threads', godQuery: '2016', totalMemBytes: GB })).not.toContain('OOM');
  });
});

/**
 * The whole path on a real run: a demo on a throwaway server of its own, the server killed with -9 once the legacy stack
 * is up (what the OOM killer does), and the run ends with DEMO_ERR_DATABASE_DIED and one line saying so.
 */
describe.skipIf(!throwawayAvailable())('a demo whose database server is killed', () => {
  it('ends with DEMO_ERR_DATABASE_DIED naming the signal, after a progress line saying the server died', async (ctx) => {
    let text = '';
    const sink = new Writable({ write: (chunk, _enc, done) => ((text += String(chunk)), done()) });
    const out = await mkdtemp(join(tmpdir(), 'strangler-demo-death-'));
    const run = runDemo({
      // More agents than the machine's own server takes (max_connections 151): the demo starts a server of its own.
      hypervisors: 160,
      regions: 1,
      out,
      stageSeconds: 60,
      rate: 5,
      seed: 3,
      pollIntervalMs: { min: 500, max: 1000 },
      workMs: 2,
      keepDatabase: false,
      stages: ['legacy'],
      legacy: { threadHandling: 'pool-of-threads', godQuery: 'optimized' },
      progress: createProgress(sink),
      env: {},
    });
    run.catch(() => {});
    await waitFor(async () => text.includes('legacy stack up') || text.includes('database: '), 180_000, 100);
    await waitFor(async () => text.includes('legacy stack up'), 180_000, 100);
    if (!/database: throwaway server/.test(text)) {
      await run.catch(() => {});
      ctx.skip(); // a server found with room for the run: nothing of the demo's own to kill
    }
    const mine = readdirSync(tmpdir())
      .filter((d) => d.startsWith('strangler-mariadb-'))
      .flatMap((d) => {
        try {
          const owner = JSON.parse(readFileSync(join(tmpdir(), d, 'owner.json'), 'utf8')) as { ownerPid: number; serverPid?: number };
          return owner.ownerPid === process.pid && owner.serverPid ? [owner.serverPid] : [];
        } catch {
          return [];
        }
      });
    expect(mine).toHaveLength(1);
    process.kill(mine[0]!, 'SIGKILL');
    await expect(run).rejects.toMatchObject({ code: 'DEMO_ERR_DATABASE_DIED', message: expect.stringMatching(/^the demo's database server \(pid \d+\) was killed by SIGKILL/) });
    expect(text).toContain('the database server died (SIGKILL); stopping');
  }, 300_000);
});
