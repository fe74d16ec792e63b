#!/usr/bin/env node
// npm run test:mutation:changed: mutation-test only the listed modules (stryker.config.mjs) that differ
// from a base branch, committed or not — a check a developer can afford before a commit.
import { execFileSync, spawnSync } from 'node:child_process';
import { modules } from '../stryker.config.mjs';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log(`usage: npm run test:mutation:changed [-- --base <ref>] [--json]

Runs Stryker (stryker.config.mjs) on the modules of its list that differ from <ref> (default main),
counting uncommitted changes, with only their tests. Reports: reports/mutation/mutation.html and .json.
  --base <ref>  compare with this ref instead of main
  --json        print {"base", "files", "exitCode"} on stdout when done (Stryker's own output goes to stderr)
Exit: Stryker's exit code; 0 when no listed module changed.`);
  process.exit(0);
}
const json = args.includes('--json');
const baseAt = args.indexOf('--base');
const base = baseAt >= 0 ? args[baseAt + 1] : 'main';
if (!base || base.startsWith('-')) {
  console.error('--base needs a ref, e.g. --base origin/main');
  process.exit(2);
}

let changed;
try {
  changed = execFileSync('git', ['diff', '--name-only', base], { encoding: 'utf8' }).split('\n').filter(Boolean);
} catch (error) {
  console.error(`git diff against ${base} failed: ${error.message}`);
  process.exit(2);
}
const files = modules.map((m) => m.file).filter((f) => changed.includes(f));
if (files.length === 0) {
  if (json) console.log(JSON.stringify({ base, files, exitCode: 0 }));
  else console.log(`no module of stryker.config.mjs's list differs from ${base}: nothing to mutate`);
  process.exit(0);
}
console.error(`mutating ${files.join(', ')} (changed against ${base})`);
const run = spawnSync('npx', ['stryker', 'run'], { stdio: ['inherit', json ? 2 : 'inherit', 'inherit'], env: { ...process.env, MUTATE: files.join(',') } });
const exitCode = run.status ?? 1;
if (json) console.log(JSON.stringify({ base, files, exitCode }));
process.exit(exitCode);
