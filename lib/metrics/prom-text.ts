import { LABEL_CHAR, LABEL_START, NAME_CHAR, NAME_START, TextCursor } from './text-cursor.ts';

/**
 * The one parser of the Prometheus text exposition format (0.0.4, which
 * prom-client writes) in the tree: the cutover gates, the dashboard, the
 * schedulers' host-metrics scrape, the demo's report and the tests all read
 * /metrics through it. prom-client has no parser, and a scraping library
 * would be a dependency for 200 lines.
 */

export type Labels = Record<string, string>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
  /** Milliseconds since the epoch, when the exposition gave one. */
  timestampMs?: number;
}

export interface ParsedMetrics {
  samples: Sample[];
  /** `# TYPE` lines: metric family name → counter, gauge, histogram, summary, untyped. */
  types: Map<string, string>;
  /** `# HELP` lines, unescaped. */
  help: Map<string, string>;
}

const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/** Parses a sample value as Prometheus does: decimals, exponents, NaN, ±Inf; undefined for anything else. */
export function parseValue(text: string): number | undefined {
  // Decimals first: nearly every value is one, and they need no lower-cased copy.
  if (FLOAT.test(text)) return Number(text);
  const lower = text.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  // Number('') is 0 and Number('0x10') is 16: only decimal floats (above).
  return undefined;
}

/** Escapes a label value for the text format. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

// The common line (no escapes) is matched by regular expressions, about ten times faster than the
// cursor walk, which stays the reference: anything the fast path does not take, the walk decides.
// The schedulers scrape thousands of hosts' lines a second through here.
const FAST_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^\\]*?)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?$/;
const FAST_LABEL = /[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*)"[ \t]*(?:,|$)/y;

/**
 * `seen`: label sets already parsed in this exposition, by their text. A host's series all carry the same
 * set (`{hypervisor="…",region="…"}`), so most lines copy one instead of matching it again.
 */
function parseFast(line: string, seen: Map<string, Labels>): Sample | undefined {
  if (line.includes('\\')) return undefined;
  const m = FAST_LINE.exec(line);
  if (!m) return undefined;
  const body = m[2];
  const known = body === undefined ? undefined : seen.get(body);
  const labels: Labels = known ? { ...known } : {};
  if (!known && body !== undefined && body.trim() !== '') {
    FAST_LABEL.lastIndex = 0;
    let consumed = 0;
    while (consumed < body.length) {
      const lm = FAST_LABEL.exec(body);
      if (!lm || Object.hasOwn(labels, lm[1]!)) return undefined;
      labels[lm[1]!] = lm[2]!;
      consumed = FAST_LABEL.lastIndex;
    }
    seen.set(body, { ...labels });
  }
  const value = parseValue(m[3]!);
  if (value === undefined) return undefined;
  const sample: Sample = { name: m[1]!, labels, value };
  if (m[4] !== undefined) {
    if (!INTEGER.test(m[4])) return undefined;
    sample.timestampMs = Number(m[4]);
  }
  return sample;
}

/** `{a="1",b="2",}`: the cursor is on `{`. Duplicate names are an error, as in Prometheus. */
function parseLabelSet(cur: TextCursor): Labels {
  const labels: Labels = {};
  cur.pos++; // {
  for (;;) {
    cur.skipSpaces();
    if (cur.peek() === '}') {
      cur.pos++;
      return labels;
    }
    const name = cur.name(LABEL_START, LABEL_CHAR, 'label name');
    cur.skipSpaces();
    if (cur.peek() !== '=') cur.fail(`expected "=" after label ${name}`);
    cur.pos++;
    cur.skipSpaces();
    const value = cur.quoted('"');
    if (Object.hasOwn(labels, name)) cur.fail(`label ${name} appears twice`);
    labels[name] = value;
    cur.skipSpaces();
    if (cur.peek() === ',') {
      cur.pos++;
      continue;
    }
    if (cur.peek() !== '}') cur.fail('expected "," or "}" in the label set');
  }
}

function parseSampleLine(line: string, lineNo: number, seen: Map<string, Labels>): Sample {
  const fast = parseFast(line.trim(), seen);
  if (fast) return fast;
  // Typed explicitly: assertion-style narrowing through cur.fail (never) needs it.
  const cur: TextCursor = new TextCursor(line, lineNo);
  cur.skipSpaces();
  const name = cur.name(NAME_START, NAME_CHAR, 'metric name');
  cur.skipSpaces();
  const labels = cur.peek() === '{' ? parseLabelSet(cur) : {};
  const rest = line.slice(cur.pos).trim().split(/[ \t]+/);
  if (rest.length === 0 || rest[0] === '') cur.fail(`sample ${name} has no value`);
  if (rest.length > 2) cur.fail(`unexpected text after the value of ${name}`);
  const value = parseValue(rest[0]!);
  if (value === undefined) cur.fail(`value ${JSON.stringify(rest[0])} of ${name} is not a number`);
  const sample: Sample = { name, labels, value };
  if (rest[1] !== undefined) {
    if (!INTEGER.test(rest[1])) cur.fail(`timestamp ${JSON.stringify(rest[1])} of ${name} is not an integer`);
    sample.timestampMs = Number(rest[1]);
  }
  return sample;
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

const META = /^#[ \t]+(HELP|TYPE)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t]+(.*))?$/;

/**
 * Parses a Prometheus text exposition. Comments and blank lines are
 * skipped; `# HELP` and `# TYPE` are kept; label values may use the `\\`,
 * `\"` and `\n` escapes; values may be `NaN`, `+Inf`, `-Inf`. A malformed
 * sample line throws METRICS_ERR_PARSE naming the line and column, rather
 * than being guessed at: a gate must not judge, nor a scheduler place, on
 * numbers it misread.
 *
 * @example
 *   parsePromText('http_requests_total{code="200"} 1027 1395066363000\n').samples
 *   // [{ name: 'http_requests_total', labels: { code: '200' }, value: 1027, timestampMs: 1395066363000 }]
 */
export function parsePromText(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  const seen = new Map<string, Labels>();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const first = line.charCodeAt(0);
    // Lines rarely start with a blank: skip the search for the first other character then.
    const start = first !== 32 && first !== 9 && line.length > 0 ? 0 : line.search(/[^ \t]/);
    if (start === -1) continue;
    if (line[start] === '#') {
      const meta = META.exec(line.slice(start));
      if (meta?.[1] === 'TYPE') types.set(meta[2]!, (meta[3] ?? 'untyped').trim());
      else if (meta?.[1] === 'HELP') help.set(meta[2]!, unescapeHelp(meta[3] ?? ''));
      continue; // any other comment, `# EOF` included
    }
    samples.push(parseSampleLine(line, i + 1, seen));
  }
  return { samples, types, help };
}

/**
 * The sum of the samples named `name` whose labels include `labels`, or
 * undefined when none matches (a metric not exported at all is not 0).
 *
 * @example
 *   sumSamples(parsePromText(text).samples, 'proxy_requests_total', { status: '502' }) ?? 0
 */
export function sumSamples(samples: readonly Sample[], name: string, labels: Labels = {}): number | undefined {
  let sum: number | undefined;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    sum = (sum ?? 0) + s.value;
  }
  return sum;
}
