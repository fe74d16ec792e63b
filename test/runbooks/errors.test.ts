import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLOUD_ERRORS } from '../../cloud/errors.ts';
import { HARPOON_ERRORS } from '../../harpoon/errors.ts';
import { CUTOVER_ERRORS } from '../../proxy/cutover/errors.ts';
import { PROXY_ERRORS } from '../../proxy/errors.ts';
import { ROUTER_ERRORS } from '../../router/errors.ts';
import { SCHEDULER_ERRORS } from '../../scheduler/errors.ts';

const ROOT = new URL('../../', import.meta.url);
const RUNBOOK = readFileSync(new URL('runbooks/errors.md', ROOT), 'utf8');
/** The codes runbooks/errors.md documents: the first cell of a table row. */
const DOCUMENTED = new Set([...RUNBOOK.matchAll(/^\| `([A-Z]+_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!));

const TABLES: Record<string, readonly string[]> = {
  CLOUD_ERRORS: Object.keys(CLOUD_ERRORS.codes),
  HARPOON_ERRORS: Object.keys(HARPOON_ERRORS.codes),
  CUTOVER_ERRORS: Object.keys(CUTOVER_ERRORS.codes),
  PROXY_ERRORS: Object.keys(PROXY_ERRORS.codes),
  ROUTER_ERRORS: Object.keys(ROUTER_ERRORS.codes),
  SCHEDULER_ERRORS: Object.keys(SCHEDULER_ERRORS.codes),
};

describe('runbooks/errors.md lists every error code', () => {
  it.each(Object.entries(TABLES))('every code of %s has a row', (_table, codes) => {
    expect(codes.length).toBeGreaterThan(0);
    expect(codes.filter((c) => !DOCUMENTED.has(c))).toEqual([]);
  });

  it('every code written in the source (outside tests and comments) has a row', () => {
    const files = execFileSync('git', ['ls-files', '*.ts'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f !== '' && !f.startsWith('test/') && !f.startsWith('node_modules/'));
    const missing = new Map<string, string>();
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(new URL(file, ROOT), 'utf8');
      } catch {
        continue; // deleted in the working tree, not yet in the index
      }
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '');
      for (const m of code.matchAll(/['"`]([A-Z]+_ERR_[A-Z_]+)['"`]/g)) if (!DOCUMENTED.has(m[1]!)) missing.set(m[1]!, file);
    }
    expect(Object.fromEntries(missing)).toEqual({});
  });

  it('a table row per code is unique, so a reader finds one meaning', () => {
    const rows = [...RUNBOOK.matchAll(/^\| `([A-Z]+_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.filter((c, i) => rows.indexOf(c) !== i)).toEqual([]);
  });
});
