import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * The layout rules of issue 13, checked over the import graph of a tree:
 * every import/export-from, dynamic import() and `new URL('…', import.meta.url)`
 * of a relative path, in every .ts file outside node_modules.
 */

/** One module reference found in a file. */
export interface ImportEdge {
  /** Importing file, relative to the root, with forward slashes. */
  from: string;
  /** The specifier as written. */
  specifier: string;
  /** The resolved file relative to the root, or undefined for a package or node builtin. */
  to: string | undefined;
  line: number;
}

export interface Violation {
  rule: 'legacy' | 'post-migration' | 'neutral' | 'migrations' | 'size' | 'unresolved';
  file: string;
  message: string;
}

/** Folders whose files may import legacy/: the wiring that runs the legacy stages, and tests. */
export const LEGACY_WIRING = ['stack', 'cli', 'demo', 'bench', 'chaos', 'test', 'bin'];
/** Entry points of the post-migration system (files, or folders ending in /): nothing they reach, even transitively, is in legacy/. */
export const POST_MIGRATION_ENTRIES = ['stack/post-migration.ts', 'test/strangled/'];
/** Neutral folders: they import only each other, packages and node builtins. */
export const NEUTRAL = ['contracts', 'domain'];
/**
 * Who may import migrations/: the database tooling that runs them (lib/db), the
 * migrations themselves and tests. Migrations import only each other, domain/,
 * contracts/ and packages.
 */
export const MIGRATION_IMPORTERS = ['migrations', 'lib/db', 'test'];
export const MAX_LINES = 600;

/**
 * Not the tree: packages, git, and the git-ignored output folders. reports/ matters most: an interrupted Stryker run
 * leaves its sandbox there (reports/<run>/.stryker-tmp), a whole copy of the tree whose test helpers import legacy/.
 */
const IGNORED_DIRS = new Set(['node_modules', '.git', 'out', 'reports', '.strangler', 'test-artifacts', '.scratch']);

function top(file: string): string {
  return file.split('/')[0]!;
}

function under(file: string, folders: string[]): boolean {
  return folders.some((f) => file === f || file.startsWith(`${f}/`));
}

/** Every .ts file below root (relative, sorted). */
export function listSources(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      if (IGNORED_DIRS.has(entry.name)) continue;
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else if (entry.isFile() && /\.m?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  walk('');
  return out.sort();
}

function resolve(root: string, from: string, specifier: string): string | undefined {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  for (const candidate of [target, `${target}.ts`, `${target}/index.ts`]) {
    const abs = path.join(root, candidate);
    if (existsSync(abs) && statSync(abs).isFile()) return candidate;
  }
  return undefined;
}

/** The module references of one file, comments and strings in code excluded (the TypeScript parser reads it). */
export function importsOf(root: string, file: string): ImportEdge[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (node: ts.Node, specifier: string) => {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    const to = relative ? resolve(root, file, specifier) : undefined;
    edges.push({ from: file, specifier, to: relative ? (to ?? `?${specifier}`) : undefined, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node, node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      add(node, node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node, node.argument.literal.text);
    } else if (
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'URL' &&
      node.arguments?.length === 2 &&
      ts.isStringLiteralLike(node.arguments[0]!) &&
      /\.m?ts$/.test(node.arguments[0].text) &&
      node.arguments[1]!.getText(source) === 'import.meta.url'
    ) {
      // A module named by path (a worker, a factory loaded by module URL) is a dependency all the same.
      add(node, node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/**
 * Checks the tree at root against the layout rules.
 *
 * @example
 *   expect(checkLayout(repoRoot, { sizeAllowList: {} })).toEqual([]);
 */
export function checkLayout(root: string, options: { sizeAllowList?: Record<string, string> } = {}): Violation[] {
  const files = listSources(root);
  const graph = new Map<string, ImportEdge[]>(files.map((f) => [f, importsOf(root, f)]));
  const violations: Violation[] = [];
  const at = (e: ImportEdge) => `${e.from}:${e.line} imports ${e.specifier}`;

  for (const edges of graph.values()) {
    for (const e of edges) {
      if (e.to?.startsWith('?')) {
        violations.push({ rule: 'unresolved', file: e.from, message: `${at(e)}, which does not exist` });
        continue;
      }
      const fromLegacy = top(e.from) === 'legacy';
      if (e.to && top(e.to) === 'legacy' && !fromLegacy && !LEGACY_WIRING.includes(top(e.from))) {
        violations.push({ rule: 'legacy', file: e.from, message: `${at(e)}: only ${LEGACY_WIRING.join(', ')} may import legacy/` });
      }
      if (under(e.from, NEUTRAL) && e.to && !under(e.to, NEUTRAL)) {
        violations.push({ rule: 'neutral', file: e.from, message: `${at(e)}: ${NEUTRAL.join('/ and ')}/ import only each other and packages` });
      }
      if (e.to && top(e.to) === 'migrations' && !under(e.from, MIGRATION_IMPORTERS)) {
        violations.push({ rule: 'migrations', file: e.from, message: `${at(e)}: only ${MIGRATION_IMPORTERS.join(', ')} may import migrations/ (put shared facts in domain/)` });
      }
      if (top(e.from) === 'migrations' && e.to && !under(e.to, ['migrations', ...NEUTRAL])) {
        violations.push({ rule: 'migrations', file: e.from, message: `${at(e)}: migrations import only each other, ${NEUTRAL.join(', ')} and packages` });
      }
    }
  }

  const entries = files.filter((f) => POST_MIGRATION_ENTRIES.some((e) => (e.endsWith('/') ? f.startsWith(e) : f === e)));
  for (const entry of entries) {
    const seen = new Map<string, string[]>([[entry, [entry]]]);
    const queue = [entry];
    while (queue.length > 0) {
      const file = queue.shift()!;
      for (const e of graph.get(file) ?? []) {
        if (!e.to || e.to.startsWith('?') || seen.has(e.to)) continue;
        const chain = [...seen.get(file)!, e.to];
        seen.set(e.to, chain);
        if (top(e.to) === 'legacy') violations.push({ rule: 'post-migration', file: entry, message: `${entry} reaches legacy/: ${chain.join(' -> ')}` });
        else queue.push(e.to);
      }
    }
  }

  const allowed = options.sizeAllowList ?? {};
  for (const file of files) {
    if (top(file) === 'test') continue;
    const lines = readFileSync(path.join(root, file), 'utf8').split('\n').length - 1;
    if (lines > MAX_LINES && !(file in allowed)) violations.push({ rule: 'size', file, message: `${file} has ${lines} lines (at most ${MAX_LINES} outside test/)` });
  }
  return violations;
}
