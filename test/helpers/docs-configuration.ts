/**
 * docs/configuration.md's tables against the code: which environment variables the code reads, with
 * which default, found by reading the source (TypeScript through its own parser, shell by pattern).
 *
 * A read, in TypeScript: `process.env.NAME` or `process.env['NAME']`, the same on an identifier named
 * `env` (the house convention: config readers take `env: Env`, functions/shared/config.ts), and a call
 * whose first argument is one of those and whose second is the name (`readInt(env, 'NAME', 5, 1, 9)`).
 * Its default: the call's third argument; for a property read, what follows `??` or `||`, or the `else`
 * of a `?:` it is the condition of. A module that imports `postgres` reads the libpq variables
 * (postgres.js does, when it gets no URL). In shell: `${NAME:-default}` and the other `${NAME...}` forms,
 * and bare `$NAME`; a script that runs pg_dump, pg_restore or psql reads the libpq variables too.
 *
 * Not covered: reads through another name (`const e = process.env; e.NAME`) or a computed name
 * (`env[name]`), what other programs read (functions-framework's FUNCTION_TARGET and PORT, Node's
 * NODE_COMPILE_CACHE, npm's own), defaults computed at run time (only the literals in a default are
 * compared: `path.join(projectRoot, '.data')` must show `.data`), and the tables' "read by" column.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface EnvRead {
  name: string;
  /** `file:line`, relative to the project root. */
  where: string;
  /** The literals of the default the code gives when the variable is unset; empty when it gives none (or computes one). */
  defaults: string[];
}

export interface ConfigurationRow {
  names: string[];
  defaultText: string;
  line: number;
}

/** postgres.js (and pg_dump, pg_restore, psql) read these when no URL says otherwise. */
export const LIBPQ_ENV = ['PGHOST', 'PGPORT', 'PGDATABASE', 'PGUSER', 'PGPASSWORD'];
/** Set by the system or the shell, never by this project's users: not ours to document. */
const SYSTEM_ENV = ['PATH', 'HOME', 'PWD', 'TMPDIR', 'EPOCHREALTIME', 'RANDOM', 'SECONDS', 'IFS'];
const NAME = /^[A-Z][A-Z0-9_]*$/;

/**
 * The variables a TypeScript file reads. `envParameter`: also reads on an identifier named `env` (code
 * and helpers); off for test files, where `env` is an environment being built for a child process.
 */
export function envReadsInTypeScript(file: string, source: string, { envParameter }: { envParameter: boolean }): EnvRead[] {
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const reads: EnvRead[] = [];
  const where = (node: ts.Node) => `${file}:${sourceFile.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const isEnv = (node: ts.Node): boolean =>
    (ts.isPropertyAccessExpression(node) && node.name.text === 'env' && ts.isIdentifier(node.expression) && node.expression.text === 'process') ||
    (envParameter && ts.isIdentifier(node) && node.text === 'env');

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && node.moduleSpecifier.text === 'postgres') {
      for (const name of LIBPQ_ENV) reads.push({ name, where: `${where(node)} (postgres.js)`, defaults: [] });
    }
    if ((ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node)) && isEnv(node.expression)) {
      const name = ts.isPropertyAccessExpression(node) ? node.name.text : ts.isStringLiteral(node.argumentExpression) ? node.argumentExpression.text : '';
      const assigned = ts.isBinaryExpression(node.parent) && node.parent.left === node && node.parent.operatorToken.kind === ts.SyntaxKind.EqualsToken;
      if (NAME.test(name) && !assigned && !SYSTEM_ENV.includes(name)) reads.push({ name, where: where(node), defaults: fallbackOf(node, sourceFile) });
    }
    if (ts.isCallExpression(node) && node.arguments.length >= 2 && isEnv(node.arguments[0]!) && ts.isStringLiteral(node.arguments[1]!) && NAME.test(node.arguments[1].text)) {
      const fallback = node.arguments[2];
      reads.push({ name: node.arguments[1].text, where: where(node), defaults: fallback ? literals(fallback, sourceFile) : [] });
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return reads;
}

/** What the code uses when the variable read at `read` is unset: the right of `??`/`||`, or the `else` of `?:`. */
function fallbackOf(read: ts.Node, sourceFile: ts.SourceFile): string[] {
  let node = read;
  // Climb through what keeps the value: `env.X?.trim()`, `env.X!`, `(env.X)`.
  for (;;) {
    const parent = node.parent;
    if ((ts.isPropertyAccessExpression(parent) || ts.isCallExpression(parent)) && parent.expression === node) node = parent;
    else if (ts.isNonNullExpression(parent) || ts.isParenthesizedExpression(parent)) node = parent;
    else break;
  }
  const parent = node.parent;
  if (ts.isBinaryExpression(parent) && parent.left === node && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(parent.operatorToken.kind)) {
    return literals(parent.right, sourceFile);
  }
  if (ts.isConditionalExpression(parent) && parent.condition === node) return literals(parent.whenFalse, sourceFile);
  return [];
}

/** The string and number literals in an expression, following identifiers to their `const` in the same file. */
function literals(expression: ts.Expression, sourceFile: ts.SourceFile): string[] {
  if (ts.isStringLiteral(expression) || ts.isNoSubstitutionTemplateLiteral(expression)) return [expression.text];
  if (ts.isNumericLiteral(expression)) return [String(Number(expression.text.replace(/_/g, '')))];
  if (ts.isIdentifier(expression)) {
    const declaration = findConst(sourceFile, expression.text);
    return declaration?.initializer ? literals(declaration.initializer, sourceFile) : [];
  }
  const found: string[] = [];
  expression.forEachChild((child) => {
    if (ts.isExpression(child) && !(ts.isIdentifier(child) && ts.isPropertyAccessExpression(expression))) found.push(...literals(child, sourceFile));
  });
  return found;
}

function findConst(sourceFile: ts.SourceFile, name: string): ts.VariableDeclaration | undefined {
  let found: ts.VariableDeclaration | undefined;
  const visit = (node: ts.Node) => {
    if (!found && ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.name.text === name && ts.isVariableDeclarationList(node.parent) && node.parent.flags & ts.NodeFlags.Const) found = node;
    else node.forEachChild(visit);
  };
  visit(sourceFile);
  return found;
}

/** The variables a shell script reads from its environment. */
export function envReadsInShell(file: string, source: string): EnvRead[] {
  const reads: EnvRead[] = [];
  const lines = source.split('\n');
  const assigned = new Set<string>();
  lines.forEach((text, i) => {
    const code = text.replace(/^\s*#.*$/, '');
    const where = `${file}:${i + 1}`;
    for (const match of code.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?:(:?[-=?+])([^}]*))?\}|\$([A-Z][A-Z0-9_]*)\b/g)) {
      const name = match[1] ?? match[4]!;
      if (SYSTEM_ENV.includes(name) || (match[4] && assigned.has(name))) continue;
      const fallback = match[2]?.endsWith('-') || match[2]?.endsWith('=') ? match[3] : undefined;
      reads.push({ name, where, defaults: fallback ? [fallback] : [] });
    }
    const assignment = /^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=/.exec(code);
    if (assignment) assigned.add(assignment[1]!);
    if (/\b(pg_dump|pg_restore|psql)\b/.test(code)) for (const name of LIBPQ_ENV) reads.push({ name, where: `${where} (libpq)`, defaults: [] });
  });
  return reads;
}

/** Every read in the project: functions/, scripts/, bench/ and test/helpers/ by the rules above, test files by `process.env` alone, and the shell scripts in db/ and scripts/. */
export function projectEnvReads(root: string): EnvRead[] {
  const files = (dir: string, pattern: RegExp): string[] =>
    readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })
      .map((file) => path.posix.join(dir, file.split(path.sep).join('/')))
      .filter((file) => pattern.test(file) && statSync(path.join(root, file)).isFile())
      .sort();
  const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
  const typescript = /\.c?ts$/;
  return [
    ...['functions', 'scripts', 'bench', 'test/helpers'].flatMap((dir) => files(dir, typescript)).flatMap((file) => envReadsInTypeScript(file, read(file), { envParameter: true })),
    ...files('test', /\.test\.ts$/).flatMap((file) => envReadsInTypeScript(file, read(file), { envParameter: false })),
    ...['db', 'scripts'].flatMap((dir) => files(dir, /\.sh$/)).flatMap((file) => envReadsInShell(file, read(file))),
  ];
}

/** The rows of every table on the page whose first column is `variable`: the names in its code spans, and the default column's text. */
export function configurationRows(markdown: string): ConfigurationRow[] {
  const rows: ConfigurationRow[] = [];
  let columns: string[] | undefined;
  markdown.split('\n').forEach((text, i) => {
    if (!text.startsWith('|')) return void (columns = undefined);
    const cells = text.split('|').slice(1, -1).map((cell) => cell.trim());
    if (!columns) {
      columns = cells;
      return;
    }
    if (columns[0] !== 'variable' || cells.every((cell) => /^:?-+:?$/.test(cell))) return;
    const names = [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).filter((name) => NAME.test(name));
    rows.push({ names, defaultText: (cells[columns.indexOf('default')] ?? '').replace(/`/g, ''), line: i + 1 });
  });
  return rows;
}

/**
 * One line per disagreement: a variable read but not in the tables, a default the tables do not show,
 * a variable in the tables that nothing reads, or one listed twice.
 */
export function configurationProblems(reads: EnvRead[], rows: ConfigurationRow[], page = 'docs/configuration.md'): string[] {
  const problems: string[] = [];
  const rowOf = new Map<string, ConfigurationRow>();
  for (const row of rows) {
    if (row.names.length === 0) problems.push(`${page}:${row.line}: a row that names no variable in a code span`);
    for (const name of row.names) {
      if (rowOf.has(name)) problems.push(`${page}:${row.line}: ${name} is listed twice (also on line ${rowOf.get(name)!.line}): give it one home`);
      else rowOf.set(name, row);
    }
  }
  const shows = (text: string, literal: string) =>
    /^-?\d+(\.\d+)?$/.test(literal) ? new RegExp(`(?<![\\d.])${literal.replace('.', '\\.')}(?![\\d.])`).test(text) : text.includes(literal);
  const reported = new Set<string>();
  for (const read of reads) {
    const row = rowOf.get(read.name);
    if (!row) {
      if (!reported.has(read.name)) problems.push(`${read.where}: reads ${read.name}, which ${page} does not list`);
      reported.add(read.name);
      continue;
    }
    for (const literal of read.defaults) {
      if (literal !== '' && !shows(row.defaultText, literal)) {
        problems.push(`${read.where}: ${read.name} defaults to "${literal}" here, but ${page}:${row.line} gives "${row.defaultText}"`);
      }
    }
  }
  const readNames = new Set(reads.map((read) => read.name));
  for (const [name, row] of rowOf) if (!readNames.has(name)) problems.push(`${page}:${row.line}: ${name} is listed, but nothing reads it`);
  return problems;
}
