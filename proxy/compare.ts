import { invalidOption } from '../lib/errors.ts';

/**
 * How shadow comparison treats two JSON answers that should be "the same".
 *
 * Path syntax (a small JSONPath subset):
 * - `$.droplet.id` — anchored at the root; `$.droplets[*].id` — every element;
 *   `$.droplets[0]` — one element; `$.meta.*` — any key at that level.
 * - `*.created_at` or `created_at` — that key at any depth (a suffix match:
 *   `*.links.self` is `links.self` anywhere).
 *
 * @example
 *   const rules: CompareRules = {
 *     ignore: ['$.droplet.id', '*.created_at'],
 *     unordered: [{ path: '$.droplets', by: 'name' }],
 *   };
 */
export interface CompareRules {
  /** Paths removed from both bodies before comparing (ids, timestamps, request ids). */
  ignore?: string[];
  /** Arrays compared as multisets: sorted by the field `by` of each element, or by the whole (normalized) element. */
  unordered?: Array<{ path: string; by?: string }>;
}

type Segment = { kind: 'key'; name: string } | { kind: 'index'; index: number } | { kind: 'anyKey' } | { kind: 'anyIndex' };

export interface PathPattern {
  source: string;
  anchored: boolean;
  segments: Segment[];
}

export interface CompiledRules {
  ignore: PathPattern[];
  unordered: Array<{ pattern: PathPattern; by?: string }>;
}

export const NO_RULES: CompiledRules = { ignore: [], unordered: [] };

const TOKEN = /\.([A-Za-z0-9_$@-]+|\*)|\[(\d+|\*)\]/y;

/** Parses one path of the syntax above; `option` names it in the error. */
export function parsePath(source: string, option: string): PathPattern {
  if (typeof source !== 'string' || source.trim() === '') throw invalidOption(option, source, 'a JSON path such as "$.droplet.id" or "*.created_at"');
  let rest = source.trim();
  let anchored = false;
  if (rest.startsWith('$')) {
    anchored = true;
    rest = rest.slice(1);
  } else if (rest.startsWith('*.')) {
    rest = rest.slice(1);
  } else {
    rest = `.${rest}`;
  }
  const segments: Segment[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < rest.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(rest);
    if (!m || m.index !== at) {
      throw invalidOption(option, source, `a JSON path of .key, .*, [n] or [*] steps (cannot read "${rest.slice(at)}")`);
    }
    if (m[1] === '*') segments.push({ kind: 'anyKey' });
    else if (m[1] !== undefined) segments.push({ kind: 'key', name: m[1] });
    else if (m[2] === '*') segments.push({ kind: 'anyIndex' });
    else segments.push({ kind: 'index', index: Number(m[2]) });
  }
  if (!anchored && segments.length === 0) throw invalidOption(option, source, 'a path naming at least one key');
  return { source, anchored, segments };
}

/** Validates and compiles rules, merging several layers (global, feature, route) in order. */
export function compileRules(layers: Array<{ rules: CompareRules | undefined; option: string }>): CompiledRules {
  const out: CompiledRules = { ignore: [], unordered: [] };
  for (const { rules, option } of layers) {
    if (rules === undefined) continue;
    if (typeof rules !== 'object' || rules === null) throw invalidOption(option, rules, 'an object { ignore?, unordered? }');
    for (const key of Object.keys(rules)) {
      if (key !== 'ignore' && key !== 'unordered') throw invalidOption(`${option}.${key}`, (rules as Record<string, unknown>)[key], 'absent (known keys: ignore, unordered)');
    }
    if (rules.ignore !== undefined) {
      if (!Array.isArray(rules.ignore)) throw invalidOption(`${option}.ignore`, rules.ignore, 'an array of JSON paths');
      rules.ignore.forEach((p, i) => out.ignore.push(parsePath(p, `${option}.ignore[${i}]`)));
    }
    if (rules.unordered !== undefined) {
      if (!Array.isArray(rules.unordered)) throw invalidOption(`${option}.unordered`, rules.unordered, 'an array of { path, by? }');
      rules.unordered.forEach((u, i) => {
        const where = `${option}.unordered[${i}]`;
        if (typeof u !== 'object' || u === null) throw invalidOption(where, u, 'an object { path, by? }');
        if (u.by !== undefined && (typeof u.by !== 'string' || u.by === '')) throw invalidOption(`${where}.by`, u.by, 'a field name');
        out.unordered.push({ pattern: parsePath(u.path, `${where}.path`), ...(u.by === undefined ? {} : { by: u.by }) });
      });
    }
  }
  return out;
}

type PathStep = string | number;

function segmentMatches(seg: Segment, step: PathStep): boolean {
  switch (seg.kind) {
    case 'key':
      return step === seg.name;
    case 'index':
      return step === seg.index;
    case 'anyKey':
      return true;
    case 'anyIndex':
      return typeof step === 'number';
  }
}

export function pathMatches(pattern: PathPattern, path: PathStep[]): boolean {
  const { segments } = pattern;
  if (pattern.anchored ? path.length !== segments.length : path.length < segments.length) return false;
  const offset = path.length - segments.length;
  for (let i = 0; i < segments.length; i++) if (!segmentMatches(segments[i]!, path[offset + i]!)) return false;
  return true;
}

/** JSON with object keys sorted: equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const IGNORED = '<ignored>';

/** Applies the rules: ignored paths dropped (array elements replaced by a marker), unordered arrays sorted. */
export function normalize(value: unknown, rules: CompiledRules, path: PathStep[] = []): unknown {
  if (Array.isArray(value)) {
    const out = value.map((el, i) => {
      path.push(i);
      const v = rules.ignore.some((p) => pathMatches(p, path)) ? IGNORED : normalize(el, rules, path);
      path.pop();
      return v;
    });
    const unordered = rules.unordered.find((u) => pathMatches(u.pattern, path));
    if (unordered) {
      const keyOf = (el: unknown) =>
        unordered.by !== undefined && el !== null && typeof el === 'object' && !Array.isArray(el)
          ? canonicalJson((el as Record<string, unknown>)[unordered.by])
          : canonicalJson(el);
      const keyed = out.map((el) => ({ key: keyOf(el), full: canonicalJson(el), el }));
      keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.full < b.full ? -1 : a.full > b.full ? 1 : 0));
      return keyed.map((k) => k.el);
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      path.push(k);
      if (!rules.ignore.some((p) => pathMatches(p, path))) out[k] = normalize(v, rules, path);
      path.pop();
    }
    return out;
  }
  return value;
}

export function formatPath(path: PathStep[]): string {
  return `$${path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('')}`;
}

/** Paths at which two normalized values differ (at most `limit`). */
export function differences(a: unknown, b: unknown, limit = 10, path: PathStep[] = [], out: string[] = []): string[] {
  if (out.length >= limit) return out;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(`${formatPath(path)} (length ${a.length} vs ${b.length})`);
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n && out.length < limit; i++) {
      path.push(i);
      differences(a[i], b[i], limit, path, out);
      path.pop();
    }
    return out;
  }
  const aObj = a !== null && typeof a === 'object' && !Array.isArray(a);
  const bObj = b !== null && typeof b === 'object' && !Array.isArray(b);
  if (aObj && bObj) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    for (const k of [...keys].sort()) {
      if (out.length >= limit) break;
      const ra = a as Record<string, unknown>;
      const rb = b as Record<string, unknown>;
      path.push(k);
      if (!(k in ra)) out.push(`${formatPath(path)} (only on new)`);
      else if (!(k in rb)) out.push(`${formatPath(path)} (only on legacy)`);
      else differences(ra[k], rb[k], limit, path, out);
      path.pop();
    }
    return out;
  }
  if (canonicalJson(a) !== canonicalJson(b)) out.push(formatPath(path));
  return out;
}

export interface ComparedResponse {
  status: number;
  contentType: string;
  body: Buffer;
}

export interface Comparison {
  equal: boolean;
  /** Where the two answers differ, e.g. `status 200 vs 500`, `$.droplet.name`. */
  differences: string[];
}

function parseJson(r: ComparedResponse): { ok: true; value: unknown } | { ok: false } {
  if (r.body.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(r.body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

/**
 * Compares the legacy and the new answer: status codes first, then the JSON
 * bodies after the rules are applied (bodies that are not JSON must be equal
 * byte for byte).
 */
export function compareResponses(legacy: ComparedResponse, next: ComparedResponse, rules: CompiledRules): Comparison {
  const diffs: string[] = [];
  if (legacy.status !== next.status) diffs.push(`status ${legacy.status} vs ${next.status}`);
  const a = parseJson(legacy);
  const b = parseJson(next);
  if (a.ok && b.ok) {
    differences(normalize(a.value, rules), normalize(b.value, rules), 10, [], diffs);
  } else if (!legacy.body.equals(next.body)) {
    diffs.push('body (not JSON; bytes differ)');
  }
  return { equal: diffs.length === 0, differences: diffs };
}
