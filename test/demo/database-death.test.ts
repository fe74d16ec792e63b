import { describe, expect, it } from 'vitest';
import { databaseDeathMessage } from '../../demo/database-death.ts';

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
