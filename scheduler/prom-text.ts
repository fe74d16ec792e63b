import { schedulerError } from './errors.ts';

/** One sample of the Prometheus text exposition format. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carried a timestamp. */
  timestampMs?: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/**
 * Parses the Prometheus text format (version 0.0.4): `# HELP`/`# TYPE` and
 * other comments are skipped, label values may use the `\\`, `\"` and `\n`
 * escapes, values may be `NaN`, `+Inf`, `-Inf`. A malformed line throws
 * SCHEDULER_ERR_METRICS_PARSE naming the line, rather than being guessed at:
 * a scheduler must not place on numbers it misread.
 *
 * @example
 *   parsePromText('dobe_host_memfree_mb{hypervisor="nyc1-hv0001"} 65536\n')
 *   // => [{ name: 'dobe_host_memfree_mb', labels: { hypervisor: 'nyc1-hv0001' }, value: 65536 }]
 */
export function parsePromText(text: string): PromSample[] {
  const out: PromSample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    try {
      out.push(parseLine(line));
    } catch (err) {
      throw schedulerError('SCHEDULER_ERR_METRICS_PARSE', `line ${i + 1} of the metrics is not Prometheus text: ${(err as Error).message}: ${JSON.stringify(line.slice(0, 200))}`);
    }
  }
  return out;
}

// The common line (no escapes): matched by regular expressions, about ten times faster than the
// character walk below, which stays the reference for everything else.
const FAST_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^\\]*?)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?$/;
const FAST_LABEL = /[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*)"[ \t]*(?:,|$)/y;

function parseFast(line: string): PromSample | undefined {
  if (line.includes('\\')) return undefined;
  const m = FAST_LINE.exec(line);
  if (!m) return undefined;
  const labels: Record<string, string> = {};
  const body = m[2];
  if (body !== undefined && body.trim() !== '') {
    FAST_LABEL.lastIndex = 0;
    let consumed = 0;
    while (consumed < body.length) {
      const lm = FAST_LABEL.exec(body);
      if (!lm || Object.hasOwn(labels, lm[1]!)) return undefined;
      labels[lm[1]!] = lm[2]!;
      consumed = FAST_LABEL.lastIndex;
    }
  }
  let value: number;
  try {
    value = parseValue(m[3]!);
  } catch {
    return undefined;
  }
  const sample: PromSample = { name: m[1]!, labels, value };
  if (m[4] !== undefined) {
    const ts = Number(m[4]);
    if (!Number.isInteger(ts)) return undefined;
    sample.timestampMs = ts;
  }
  return sample;
}

function parseLine(line: string): PromSample {
  const fast = parseFast(line);
  if (fast) return fast;
  const nameMatch = NAME.exec(line);
  if (!nameMatch) throw new Error('no metric name');
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      pos = skipSpaces(line, pos);
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const labelMatch = LABEL_NAME.exec(line.slice(pos));
      if (!labelMatch) throw new Error(`bad label name at column ${pos + 1}`);
      const labelName = labelMatch[0];
      pos = skipSpaces(line, pos + labelName.length);
      if (line[pos] !== '=') throw new Error(`expected = after label ${labelName}`);
      pos = skipSpaces(line, pos + 1);
      if (line[pos] !== '"') throw new Error(`expected " to open the value of label ${labelName}`);
      pos++;
      let value = '';
      for (;;) {
        const ch = line[pos];
        if (ch === undefined) throw new Error(`unterminated value of label ${labelName}`);
        if (ch === '"') {
          pos++;
          break;
        }
        if (ch === '\\') {
          const next = line[pos + 1];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else throw new Error(`bad escape \\${next ?? ''} in label ${labelName}`);
          pos += 2;
          continue;
        }
        value += ch;
        pos++;
      }
      if (Object.hasOwn(labels, labelName)) throw new Error(`label ${labelName} given twice`);
      labels[labelName] = value;
      pos = skipSpaces(line, pos);
      if (line[pos] === ',') {
        pos++;
        continue;
      }
      if (line[pos] === '}') {
        pos++;
        break;
      }
      throw new Error(`expected , or } after label ${labelName}`);
    }
  }
  const rest = line.slice(pos).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error('expected a value and an optional timestamp');
  const value = parseValue(rest[0]!);
  const sample: PromSample = { name, labels, value };
  if (rest[1] !== undefined) {
    const ts = Number(rest[1]);
    if (!Number.isInteger(ts)) throw new Error(`bad timestamp ${rest[1]}`);
    sample.timestampMs = ts;
  }
  return sample;
}

function skipSpaces(line: string, pos: number): number {
  while (line[pos] === ' ' || line[pos] === '\t') pos++;
  return pos;
}

function parseValue(text: string): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  // Number('') is 0 and Number('0x10') is 16: accept only decimal floats.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`bad value ${text}`);
  return Number(text);
}

/** Escapes a label value for the text format. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
