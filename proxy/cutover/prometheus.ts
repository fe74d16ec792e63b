import { cutoverError } from './errors.ts';

/**
 * Just enough Prometheus for gates: a parser for the text exposition format
 * (0.0.4, which prom-client writes), PromQL-style series selectors, counter
 * increases between two scrapes and histogram_quantile. prom-client has no
 * parser, and a scraping library would be a dependency for 200 lines.
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

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/** Parses a sample value as Prometheus does: decimals, exponents, NaN, ±Inf. */
export function parseValue(text: string): number | undefined {
  const lower = text.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  return FLOAT.test(text) ? Number(text) : undefined;
}

class Cursor {
  pos = 0;
  constructor(
    readonly text: string,
    readonly line: number,
  ) {}
  get done(): boolean {
    return this.pos >= this.text.length;
  }
  peek(): string {
    return this.text[this.pos] ?? '';
  }
  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  fail(message: string): never {
    throw cutoverError('CUTOVER_ERR_METRICS_PARSE', `line ${this.line}: ${message} at column ${this.pos + 1}: ${clip(this.text)}`);
  }
  name(start: RegExp, rest: RegExp, what: string): string {
    const from = this.pos;
    if (!start.test(this.peek())) this.fail(`expected a ${what}`);
    this.pos++;
    while (!this.done && rest.test(this.peek())) this.pos++;
    return this.text.slice(from, this.pos);
  }
  /** A quoted string: `"…"` (the exposition format) or, in selectors, `'…'`; escapes \\ \" \' \n. */
  quoted(quotes: string): string {
    const quote = this.peek();
    if (!quotes.includes(quote) || quote === '') this.fail(`expected a quoted value`);
    this.pos++;
    let out = '';
    for (;;) {
      if (this.done) this.fail('unterminated quoted value');
      const ch = this.text[this.pos++]!;
      if (ch === quote) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      if (this.done) this.fail('unterminated escape');
      const next = this.text[this.pos++]!;
      if (next === 'n') out += '\n';
      else if (next === '\\' || next === '"' || next === "'") out += next;
      // Prometheus keeps an unknown escape as written.
      else out += '\\' + next;
    }
  }
}

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** `{a="1",b="2",}`: the cursor is on `{`. Duplicate names are an error, as in Prometheus. */
function parseLabelSet(cur: Cursor): Labels {
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

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/**
 * Parses a Prometheus text exposition into samples. Comments and blank
 * lines are skipped; `# HELP` and `# TYPE` are kept; a malformed sample
 * line throws CUTOVER_ERR_METRICS_PARSE naming the line.
 *
 * @example
 *   parsePrometheusText('http_requests_total{code="200"} 1027 1395066363000\n').samples
 *   // [{ name: 'http_requests_total', labels: { code: '200' }, value: 1027, timestampMs: 1395066363000 }]
 */
export function parsePrometheusText(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const cur: Cursor = new Cursor(line, i + 1);
    cur.skipSpaces();
    if (cur.done) continue;
    if (cur.peek() === '#') {
      const meta = /^#[ \t]+(HELP|TYPE)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:[ \t]+(.*))?$/.exec(line.slice(cur.pos));
      if (meta?.[1] === 'TYPE') types.set(meta[2]!, (meta[3] ?? 'untyped').trim());
      else if (meta?.[1] === 'HELP') help.set(meta[2]!, unescapeHelp(meta[3] ?? ''));
      continue; // any other comment, `# EOF` included
    }
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
    samples.push(sample);
  }
  return { samples, types, help };
}

// ---------------------------------------------------------------------------
// Selectors

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  label: string;
  op: MatchOp;
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
  /** The text it was parsed from, for messages. */
  source: string;
}

/**
 * Parses a PromQL-style instant selector: `name`, `name{a="x",b!="y",c=~"5..",d!~'z'}`.
 * Values may use single quotes, which keeps selectors readable inside JSON.
 * Regexes are fully anchored, as in PromQL.
 *
 * @example
 *   parseSelector(`proxy_requests_total{feature='event-delivery',status=~'5..'}`)
 */
export function parseSelector(text: string): Selector {
  const cur: Cursor = new Cursor(text.trim(), 1);
  let metric: string;
  try {
    metric = cur.name(NAME_START, NAME_CHAR, 'metric name');
  } catch {
    throw cutoverError('CUTOVER_ERR_BAD_SELECTOR', `selector ${JSON.stringify(text)} must start with a metric name`);
  }
  const matchers: Matcher[] = [];
  try {
    cur.skipSpaces();
    if (cur.peek() === '{') {
      cur.pos++;
      for (;;) {
        cur.skipSpaces();
        if (cur.peek() === '}') {
          cur.pos++;
          break;
        }
        const label = cur.name(LABEL_START, LABEL_CHAR, 'label name');
        cur.skipSpaces();
        const op = (['=~', '!~', '!=', '='] as const).find((o) => cur.text.startsWith(o, cur.pos));
        if (!op) cur.fail(`expected =, !=, =~ or !~ after ${label}`);
        cur.pos += op.length;
        cur.skipSpaces();
        const value = cur.quoted(`"'`);
        if (op === '=~' || op === '!~') {
          try {
            new RegExp(`^(?:${value})$`);
          } catch {
            cur.fail(`${label}${op}${JSON.stringify(value)} is not a valid regular expression`);
          }
        }
        matchers.push({ label, op, value });
        cur.skipSpaces();
        if (cur.peek() === ',') {
          cur.pos++;
          continue;
        }
        if (cur.peek() !== '}') cur.fail('expected "," or "}"');
      }
    }
    cur.skipSpaces();
    if (!cur.done) cur.fail('unexpected text after the selector');
  } catch (err) {
    throw cutoverError('CUTOVER_ERR_BAD_SELECTOR', `selector ${JSON.stringify(text)}: ${(err as Error).message.replace(/^line 1: /, '')}`);
  }
  if (!METRIC_NAME.test(metric)) throw cutoverError('CUTOVER_ERR_BAD_SELECTOR', `selector ${JSON.stringify(text)}: bad metric name`);
  return { metric, matchers, source: text };
}

const regexCache = new Map<string, RegExp>();
function anchored(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(pattern, re);
  }
  return re;
}

/** Whether the labels satisfy every matcher; a missing label is the empty string, as in PromQL. */
export function labelsMatch(labels: Labels, matchers: readonly Matcher[]): boolean {
  return matchers.every((m) => {
    const v = labels[m.label] ?? '';
    switch (m.op) {
      case '=':
        return v === m.value;
      case '!=':
        return v !== m.value;
      case '=~':
        return anchored(m.value).test(v);
      case '!~':
        return !anchored(m.value).test(v);
    }
  });
}

/** The samples a selector picks; `suffix` selects a histogram's `_bucket`/`_count` series. */
export function select(samples: readonly Sample[], selector: Selector, suffix = ''): Sample[] {
  const name = selector.metric + suffix;
  return samples.filter((s) => s.name === name && labelsMatch(s.labels, selector.matchers));
}

/** A stable identity for one series: the name and its labels in sorted order. */
export function seriesKey(sample: Pick<Sample, 'name' | 'labels'>): string {
  const entries = Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sample.name + JSON.stringify(entries);
}

/**
 * A counter's increase between two readings. A smaller value now means the
 * process restarted (counters only go up), so everything counted since the
 * restart is the increase, as Prometheus' increase() assumes.
 */
export function counterIncrease(now: number, before: number | undefined): number {
  if (!Number.isFinite(now)) return 0;
  if (before === undefined || !Number.isFinite(before)) return now;
  return now >= before ? now - before : now;
}

/**
 * The q-quantile of a cumulative histogram, interpolated linearly inside
 * the bucket that holds it, exactly as PromQL's histogram_quantile: a rank
 * in the +Inf bucket answers the highest finite bound; no +Inf bucket or no
 * observations answers NaN.
 *
 * @example
 *   histogramQuantile(0.5, [{ le: 0.1, count: 50 }, { le: 0.5, count: 100 }, { le: Infinity, count: 100 }]) // 0.1
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<{ le: number; count: number }>): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const sorted = [...buckets].filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  if (sorted.length < 2 || sorted.at(-1)!.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  // Deltas of cumulative counts across a restart can dip; keep them monotonic as Prometheus does.
  let max = 0;
  const counts = sorted.map((b) => (max = Math.max(max, b.count)));
  const total = counts.at(-1)!;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let i = counts.findIndex((c) => c >= rank);
  if (i === sorted.length - 1) return sorted[sorted.length - 2]!.le;
  if (i < 0) i = sorted.length - 1;
  const end = sorted[i]!.le;
  if (i === 0 && end <= 0) return end;
  const start = i === 0 ? 0 : sorted[i - 1]!.le;
  const below = i === 0 ? 0 : counts[i - 1]!;
  const inBucket = counts[i]! - below;
  return inBucket === 0 ? end : start + (end - start) * ((rank - below) / inBucket);
}
