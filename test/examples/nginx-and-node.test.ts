import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { formatMysqlUrl } from '../../lib/db/config.ts';
import { dropDatabase, uniqueDatabaseName } from '../../lib/db/database.ts';
import { BIN } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNBOOK = join(ROOT, 'runbooks/your-own-service.md');
/** The ports examples/nginx-and-node/proxy.json names (and the recorder's). */
const PORTS = [18000, 18001, 18005, 18080, 18081, 18400];

/** The runbook's fenced `sh` blocks, in order: the commands a reader types. */
export function runbookCommands(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Runs every block in one shell (exports carry over, as in a reader's terminal), each preceded by a marker. */
function runBlocks(blocks: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; outputs: string[]; all: string }> {
  const script = blocks.map((b, i) => `echo "@@block ${i}@@"\n${b}`).join('\n');
  return new Promise((resolve) => {
    const child = spawn('bash', ['-eu', '-o', 'pipefail', '-c', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let all = '';
    child.stdout.on('data', (d) => (all += d));
    child.stderr.on('data', (d) => (all += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const outputs = all.split(/@@block \d+@@\n/).slice(1);
      resolve({ code, outputs, all });
    });
  });
}

describe('examples/nginx-and-node through runbooks/your-own-service.md, every command as written', () => {
  const runDir = mkdtempSync(join(tmpdir(), 'strangler-example-'));
  const binDir = mkdtempSync(join(tmpdir(), 'strangler-bin-'));
  const server = inject('dbAdmin');
  const database = uniqueDatabaseName('t_example');

  afterAll(async () => {
    // Whatever the runbook's last block did not stop (a failed run stops midway).
    for (const file of readdirSync(runDir).filter((f) => f.endsWith('.pid') && f !== 'nginx.pid')) {
      try {
        process.kill(Number(readFileSync(join(runDir, file), 'utf8')), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (existsSync(join(runDir, 'nginx.pid'))) {
      await new Promise((resolve) => spawn(join(ROOT, 'examples/nginx-and-node/stop-legacy.sh'), { env: { ...process.env, RUN_DIR: runDir }, stdio: 'ignore' }).on('close', resolve));
    }
    await dropDatabase(server, database).catch(() => undefined);
  });

  it('shadow with a diff, the autopilot through canary to full under replayed traffic, then a broken new side it rolls back by itself', async () => {
    expect(existsSync('/usr/sbin/nginx'), 'the example needs nginx (apt-get install nginx)').toBe(true);
    for (const port of PORTS) expect(await portInUse(port), `port ${port} (examples/nginx-and-node/proxy.json) is taken`).toBe(false);
    // `strangler` on PATH, as after npm link.
    writeFileSync(join(binDir, 'strangler'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    chmodSync(join(binDir, 'strangler'), 0o755);
    const blocks = runbookCommands(readFileSync(RUNBOOK, 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(10);
    const env = {
      ...process.env,
      PATH: `${binDir}:${process.env.PATH}`,
      MYSQL_URL: formatMysqlUrl(server).replace(/\/$/, ''),
      STRANGLER_DATABASE: database,
      RUN_DIR: runDir,
      LOG_LEVEL: 'warn',
    };
    const run = await runBlocks(blocks, env, 420_000);
    const out = (heading: RegExp) => run.outputs[blocks.findIndex((b) => heading.test(b))] ?? '';
    expect(run.code, run.all.slice(-4000)).toBe(0);
    // 2: both sides answer, and differ.
    expect(out(/start-legacy\.sh/)).toContain('"price": 119.9');
    expect(out(/start-legacy\.sh/)).toContain('"price":"119.9"');
    // 3: the files are valid; 5: every gate's metric is served.
    expect(out(/--check/)).toContain('is a valid proxy config');
    expect(out(/strangler proxy --config examples\/nginx-and-node\/proxy.json >/)).toContain('every gate reads what its service serves');
    // 6: a capture of the 61 requests (and its header line).
    expect(Number(out(/replay record/).trim())).toBeGreaterThanOrEqual(61);
    // 7: shadow shows the diff on product 3's price.
    const shadow = out(/shadow the new catalog/);
    expect(shadow).toContain('advanced to step 1/3 shadow');
    expect(shadow).toContain('"differences":["$.product.price"]');
    // 8: the autopilot moved it through the canary to full, each advance in the history.
    const autopilot = out(/cutover run catalog --detach/);
    expect(autopilot).toMatch(/advance\s+1->2/);
    expect(autopilot).toMatch(/advance\s+2->3/);
    // 9: full under the replayed capture, no failure.
    expect(out(/--loops 2\nstrangler cutover status\n$/)).toMatch(/catalog\s+3\/3 full\s+full\s+100%/);
    expect(out(/--loops 2\nstrangler cutover status\n$/)).toContain('failed 0');
    // 10: the broken side was rolled back to legacy by the autopilot, not by a command.
    const drill = out(/NEW_MODE=broken/);
    expect(drill).toMatch(/catalog\s+0\/3 legacy\s+legacy/);
    expect(drill).toMatch(/auto-rollback\s+3->0/);
    // The last answer is nginx's again (its files keep the space after the colon).
    expect(drill).toContain('"price": 7.5');
  }, 480_000);
});
