import { quote } from '../../lib/errors.ts';
import { parseSelector } from './selectors.ts';

/**
 * Collects every problem of a plan (or config) file at once, each naming its JSON path
 * (`features.event-delivery.steps[2].gates[0].max`), so one run of `strangler cutover plan --file`
 * shows them all.
 *
 * @example
 *   const c = new Checker();
 *   c.number('features.scheduling.steps[0].soak_seconds', value, 0, 3600, { integer: true });
 *   if (c.errors.length) throw …;
 */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export class Checker {
  readonly errors: string[] = [];
  add(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }
  object(path: string, value: unknown): Record<string, unknown> | undefined {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    this.add(path, `must be an object, got ${typeName(value)}`);
    return undefined;
  }
  fields(path: string, obj: Record<string, unknown>, accepted: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!accepted.includes(key)) this.add(`${path}.${key}`, `unknown field; accepted fields are ${accepted.join(', ')}`);
    }
  }
  string(path: string, value: unknown, pattern?: RegExp, hint?: string): value is string {
    if (typeof value !== 'string') {
      this.add(path, `must be a string${hint ? ` (${hint})` : ''}, got ${typeName(value)}`);
      return false;
    }
    if (pattern && !pattern.test(value)) {
      this.add(path, `${quote(value)} is not valid${hint ? `: ${hint}` : ''}`);
      return false;
    }
    return true;
  }
  optionalString(path: string, value: unknown, max = 500): void {
    if (value === undefined) return;
    if (typeof value !== 'string') this.add(path, `must be a string, got ${typeName(value)}`);
    else if (value.length > max) this.add(path, `must be at most ${max} characters`);
  }
  number(path: string, value: unknown, min: number, max: number, options: { integer?: boolean; exclusiveMin?: boolean } = {}): value is number {
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (options.exclusiveMin ? value > min : value >= min) &&
      value <= max &&
      (!options.integer || Number.isInteger(value));
    if (!ok) {
      const kind = options.integer ? 'an integer' : 'a number';
      this.add(path, `must be ${kind} ${options.exclusiveMin ? `above ${min}` : `from ${min}`} to ${max}, got ${quote(value)}`);
    }
    return ok;
  }
  selector(path: string, value: unknown, options: { histogram?: boolean } = {}): void {
    if (!this.string(path, value, undefined, `a selector such as "metric_name{label='value'}"`)) return;
    try {
      const sel = parseSelector(value);
      if (options.histogram) {
        if (/_(bucket|count|sum)$/.test(sel.metric)) this.add(path, `name the histogram without _bucket/_count/_sum, got ${quote(sel.metric)}`);
        if (sel.matchers.some((m) => m.label === 'le')) this.add(path, 'must not match on the le label; the gate reads every bucket');
      }
    } catch (err) {
      this.add(path, (err as Error).message);
    }
  }
}
