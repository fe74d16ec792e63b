import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface K6Request {
  method: string;
  url: string;
  body: string | null;
  params: { headers?: Record<string, string>; tags?: Record<string, string>; timeout?: string };
}

export interface K6Run {
  requests: K6Request[];
  /** The script's exported `options`. */
  options: { scenarios?: Record<string, Record<string, unknown>>; thresholds?: Record<string, string[]>; [key: string]: unknown };
  /** What handleSummary returned for a small fake summary, if the script has one. */
  summary?: Record<string, string>;
  setupData?: unknown;
}

/** Stand-ins for the k6 modules a script imports: they record what the script asks for. */
const STANDINS: Record<string, string> = {
  'k6/http': `export const requests = [];
function request(method, url, body, params) { requests.push({ method, url, body: body ?? null, params: params ?? {} }); return { status: 200, headers: {}, body: '{}', json: () => ({}) }; }
export default { request, get: (u, p) => request('GET', u, null, p), post: (u, b, p) => request('POST', u, b, p), del: (u, b, p) => request('DELETE', u, b, p) };`,
  k6: `export function check(v, checks) { return Object.values(checks).every((f) => f(v)); }
export function sleep() {}
export function group(_n, f) { return f(); }
export function fail(m) { throw new Error(m); }`,
  'k6/data': `export class SharedArray { constructor(name, fn) { const a = fn(); if (!Array.isArray(a)) throw new Error('SharedArray ' + name + ': the function must return an array'); return Object.freeze(a); } }`,
  'k6/encoding': `export default { b64decode(s, _enc, format) { const b = Buffer.from(s, 'base64'); return format === 's' ? b.toString('utf8') : b.buffer.slice(b.byteOffset, b.byteOffset + b.length); }, b64encode(s) { return Buffer.from(s).toString('base64'); } };`,
  'k6/execution': `export default { scenario: { iterationInTest: 0, name: 'default' }, vu: { idInTest: 1 } };`,
};

/**
 * Runs a k6 script in a node child process with stand-ins for `k6/http`,
 * `k6`, `k6/data` (SharedArray), `k6/encoding` and `k6/execution`, the k6
 * globals `open()` (relative to the script) and `__ENV`; calls setup() once
 * and the default function `iterations` times (advancing
 * exec.scenario.iterationInTest), then handleSummary on a small summary.
 * A syntax error or a module k6 does not have fails the run.
 */
export async function runK6Script(script: string, options: { env?: Record<string, string>; iterations: number }): Promise<K6Run> {
  const dir = await mkdtemp(join(tmpdir(), 'k6-standin-'));
  try {
    const urls: Record<string, string> = {};
    for (const [name, code] of Object.entries(STANDINS)) {
      const file = join(dir, `${name.replace('/', '-')}.mjs`);
      await writeFile(file, code);
      urls[name] = pathToFileURL(file).href;
    }
    const source = await readFile(script, 'utf8');
    const rewritten = source.replace(/from\s+['"](k6(?:\/[a-z]+)?)['"]/g, (whole, mod: string) => {
      if (!urls[mod]) throw new Error(`the script imports ${mod}, which the stand-ins do not provide`);
      return `from ${JSON.stringify(urls[mod])}`;
    });
    const scriptCopy = join(dir, 'script.mjs');
    await writeFile(scriptCopy, rewritten);
    const runner = join(dir, 'runner.mjs');
    await writeFile(
      runner,
      `import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
globalThis.__ENV = ${JSON.stringify(options.env ?? {})};
globalThis.open = (p) => readFileSync(resolve(${JSON.stringify(dirname(resolve(script)))}, p), 'utf8');
const http = await import(${JSON.stringify(urls['k6/http'])});
const exec = (await import(${JSON.stringify(urls['k6/execution'])})).default;
const mod = await import(${JSON.stringify(pathToFileURL(scriptCopy).href)});
const setupData = mod.setup ? mod.setup() : undefined;
for (let i = 0; i < ${options.iterations}; i++) { exec.scenario.iterationInTest = i; mod.default(setupData); }
const fake = { metrics: { http_reqs: { values: { count: 3, rate: 1 } }, http_req_failed: { values: { rate: 0 }, thresholds: { 'rate<0.01': { ok: true } } }, http_req_duration: { values: { med: 1, 'p(90)': 2, 'p(95)': 2, 'p(99)': 3, max: 4 }, thresholds: { 'p(99)<1000': { ok: true } } } } };
const summary = mod.handleSummary ? mod.handleSummary(fake) : undefined;
process.stdout.write(JSON.stringify({ requests: http.requests, options: mod.options, summary, setupData }));
`,
    );
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
      const child = spawn(process.execPath, [runner], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('close', (code) => res({ code, stdout, stderr }));
    });
    if (code !== 0) throw new Error(`k6 script ${script} failed under the stand-ins (exit ${code}):\n${stderr}`);
    return JSON.parse(stdout) as K6Run;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
