import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { cliLogger, formatLine } from '../../cli/cli-logger.ts';

function capture(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY });
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return { stream, text: () => text };
}

const flush = () => new Promise((r) => setTimeout(r, 20));

describe('cliLogger', () => {
  it('gives a person at a terminal a line, not JSON, with the secrets still redacted', async () => {
    const out = capture(true);
    const logger = cliLogger({}, out.stream).child({ component: 'cutover' });
    logger.warn({ feature: 'scheduling', failed: ['18.8% > 10%'], token: 's3cr3t-token-value' }, 'gate failing');
    logger.info('not shown at the default level');
    await flush();
    expect(out.text()).toBe('warn  cutover: gate failing · feature=scheduling failed=["18.8% > 10%"] token=[redacted]\n');
  });

  it('writes pino JSON to a pipe or a file, and on a terminal when LOG_FORMAT=json', async () => {
    for (const [isTTY, env] of [[false, {}], [true, { LOG_FORMAT: 'json' }]] as const) {
      const out = capture(isTTY);
      cliLogger(env, out.stream).error({ password: 'hunter2' }, 'boom');
      await flush();
      const entry = JSON.parse(out.text()) as Record<string, unknown>;
      expect(entry).toMatchObject({ level: 50, msg: 'boom', password: '[redacted]' });
    }
  });

  it('passes a line that is not JSON on unchanged', () => {
    expect(formatLine('plain text')).toBe('plain text');
  });
});
