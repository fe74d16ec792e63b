import { cutoverError } from './errors.ts';
import type { Labels, Sample } from '../../lib/metrics/prom-text.ts';
import { LABEL_CHAR, LABEL_START, NAME_CHAR, NAME_START, TextCursor } from '../../lib/metrics/text-cursor.ts';

/**
 * PromQL-style series selectors for the plan's gates, the counter increase
 * between two scrapes, and series identity. The text itself is read by
 * lib/metrics/prom-text.ts; the quantile is lib/metrics/histogram-quantile.ts.
 */

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

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
  const cur: TextCursor = new TextCursor(text.trim(), 1);
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
