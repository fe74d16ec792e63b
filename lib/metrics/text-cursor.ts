import { StranglerError } from '../errors.ts';

/**
 * A position in one line of Prometheus text or of a PromQL selector, shared
 * by the exposition parser (lib/metrics/prom-text.ts) and the gates'
 * selector parser so the two read names and quoted values alike.
 * Its failures are METRICS_ERR_PARSE naming the line and column.
 *
 * @example
 *   const cur = new TextCursor('m{a="1"}', 1);
 *   cur.name(NAME_START, NAME_CHAR, 'metric name'); // 'm'
 */
export class TextCursor {
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
    throw new StranglerError('METRICS_ERR_PARSE', `line ${this.line}: ${message} at column ${this.pos + 1}: ${clip(this.text)}`, { status: 502 });
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

export const NAME_START = /[a-zA-Z_:]/;
export const NAME_CHAR = /[a-zA-Z0-9_:]/;
export const LABEL_START = /[a-zA-Z_]/;
export const LABEL_CHAR = /[a-zA-Z0-9_]/;

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
