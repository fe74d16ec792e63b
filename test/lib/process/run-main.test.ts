import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const CHILD = new URL('../../helpers/run-main-child.ts', import.meta.url).pathname;

/** Runs the child main.ts; `signal` is sent once it printed `listening`. */
function run(env: Record<string, string>, signal?: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string; answered: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let answered = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      const port = /listening (\d+)/.exec(stdout)?.[1];
      if (port && signal && !answered) {
        answered = true;
        // The service really serves before the signal arrives.
        fetch(`http://127.0.0.1:${port}/`)
          .then((r) => r.text())
          .then((body) => {
            expect(body).toBe('ok');
            child.kill(signal);
          }, reject);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr, answered }));
  });
}

describe('runMain (lib/process/run-main.ts), in a real process', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('on %s closes the service and exits 0', async (signal) => {
    const r = await run({}, signal);
    expect(r.answered).toBe(true);
    expect(r.stdout).toContain('closed');
    expect(r.code).toBe(0);
  });

  it('a start that fails with a code: the service is closed, one fatal line carries the code, exit 1', async () => {
    const r = await run({ RUN_MAIN_FAIL: 'start' });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('closed');
    const fatal = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('"level":60'));
    expect(fatal).toHaveLength(1);
    expect(JSON.parse(fatal[0]!)).toMatchObject({ code: 'TEST_ERR_START', err: 'the test service refused to start', msg: 'test service failed to start' });
  });

  it('a start that fails without a code logs the service\'s internal code', async () => {
    const r = await run({ RUN_MAIN_FAIL: 'uncoded' });
    expect(r.code).toBe(1);
    const fatal = (r.stdout + r.stderr).split('\n').find((l) => l.includes('"level":60'));
    expect(JSON.parse(fatal!)).toMatchObject({ code: 'TEST_ERR_INTERNAL', err: 'something without a code' });
  });
});
