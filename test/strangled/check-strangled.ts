/**
 * npm run check:strangled: deletes legacy/ from a copy of the tree and
 * proves what is left is the post-migration system. It copies the files git
 * tracks (and untracked ones it does not ignore, so a change can be checked
 * before its commit) without legacy/ to a temporary directory, links
 * node_modules, type-checks the service folders and the post-migration
 * composition there (any import of legacy/, however indirect, is a missing
 * module), and runs the post-lockdown smoke test (test/strangled/) in the
 * copy, side by side. Exit 0 when both pass.
 *
 *   npm run check:strangled [-- --keep] [-- --json]
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What the post-migration system is: every folder that outlives the migration, and the composition that runs it. */
const STRANGLED_INCLUDE = [
  'cloud',
  'contracts',
  'dobe',
  'domain',
  'harpoon',
  'lib',
  'migrations',
  'proxy',
  'router',
  'scheduler',
  'stack/post-migration.ts',
  'stack/seed',
  'test/strangled',
];

const HELP = `npm run check:strangled [-- --keep] [-- --json]

Copies the tracked tree without legacy/ to a temporary directory, type-checks the
post-migration system there (${STRANGLED_INCLUDE.join(', ')}) and runs the post-lockdown
smoke test (test/strangled/post-migration.test.ts) in the copy.

  --keep   leave the copy in place and print its path
  --json   one JSON object on stdout: { ok, copy_ms, typecheck_ms, smoke_ms, total_ms, files }
  --help   this text
`;

function run(command: string, args: string[], cwd: string, quiet: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'], env: process.env });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { keep: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const say = (line: string) => (values.json ? process.stderr : process.stdout).write(`check:strangled: ${line}\n`);
  const t0 = Date.now();
  const dir = mkdtempSync(path.join(tmpdir(), 'strangled-'));
  let ok = false;
  const timings = { copy_ms: 0, typecheck_ms: 0, smoke_ms: 0 };
  let files = 0;
  try {
    const tracked = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).split('\0').filter(Boolean);
    for (const file of tracked) {
      if (file === 'legacy' || file.startsWith('legacy/') || file === 'node_modules') continue;
      const from = path.join(ROOT, file);
      if (!existsSync(from)) continue;
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      cpSync(from, path.join(dir, file));
      files++;
    }
    symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'));
    // The root tsconfig's compiler options, over the post-migration folders only.
    writeFileSync(path.join(dir, 'tsconfig.strangled.json'), JSON.stringify({ extends: './tsconfig.json', include: STRANGLED_INCLUDE }, null, 2));
    timings.copy_ms = Date.now() - t0;
    say(`copied ${files} tracked files without legacy/ to ${dir} (${timings.copy_ms} ms)`);

    // The type-check and the smoke test are independent (tsx does not type-check): run them side by side.
    const tChecks = Date.now();
    const tsc = path.join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    const vitest = path.join(dir, 'node_modules', 'vitest', 'vitest.mjs');
    const [typecheck, smoke] = await Promise.all([
      run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.strangled.json'], dir, false).then((code) => {
        timings.typecheck_ms = Date.now() - tChecks;
        say(code === 0 ? `type-checks without legacy/ (${timings.typecheck_ms} ms)` : `the post-migration system does not type-check without legacy/ (${timings.typecheck_ms} ms)`);
        return code;
      }),
      run(process.execPath, [vitest, 'run', '--config', 'test/strangled/vitest.config.ts'], dir, Boolean(values.json)).then((code) => {
        timings.smoke_ms = Date.now() - tChecks;
        say(code === 0 ? `post-lockdown smoke test passed without legacy/ (${timings.smoke_ms} ms)` : `the post-lockdown smoke test failed in the copy (${timings.smoke_ms} ms)`);
        return code;
      }),
    ]);
    if (typecheck !== 0 || smoke !== 0) return 1;
    ok = true;
    return 0;
  } finally {
    const total = Date.now() - t0;
    if (values.keep) say(`kept the copy at ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    say(`${ok ? 'ok' : 'FAILED'} in ${(total / 1000).toFixed(1)} s`);
    if (values.json) process.stdout.write(`${JSON.stringify({ ok, ...timings, total_ms: total, files })}\n`);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`check:strangled: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
