/**
 * PromQL read with Prometheus's own grammar (@prometheus-io/lezer-promql, the parser of Prometheus's web UI,
 * from the prometheus/prometheus repository), and the queries we ship gathered from wherever they live.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { projectRoot } from '../../functions/shared/config';
import { parseYamlDocuments, type Obj } from './manifests';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

/**
 * The metric names `expr` selects, each once, in order: `name{...}`, `{__name__="name"}` and Prometheus 3's
 * `{"name"}`. Throws on a syntax error, and on a name matched by a regex, which no list could check.
 */
export function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names = new Set<string>();
  const text = (node: SyntaxNode) => expr.slice(node.from, node.to);
  tree.iterate({
    enter(ref) {
      const node = ref.node;
      if (node.type.isError) throw new Error(`not PromQL: ${JSON.stringify(expr)} at ${node.from}: ${JSON.stringify(expr.slice(node.from, node.from + 20))}`);
      if (node.name === 'Identifier' && node.parent?.name === 'VectorSelector') names.add(text(node));
      if (node.name === 'QuotedLabelName' && node.parent?.name === 'LabelMatchers') names.add(unquote(text(node.getChild('StringLiteral')!)));
      if (node.name === 'UnquotedLabelMatcher' || node.name === 'QuotedLabelMatcher') {
        const label = node.getChild('LabelName') ?? node.getChild('QuotedLabelName')?.getChild('StringLiteral');
        if (!label || unquote(text(label)) !== '__name__') return;
        const op = text(node.getChild('MatchOp')!);
        const value = unquote(text(node.getChild('StringLiteral', 'MatchOp')!));
        if (op !== '=') throw new Error(`${JSON.stringify(expr)}: __name__${op}${JSON.stringify(value)} names metrics by a pattern; name each one`);
        names.add(value);
      }
    },
  });
  return [...names];
}

/** A PromQL string literal's value: "..." and '...' with Go's escapes, `...` raw. */
export function unquote(literal: string): string {
  if (!/^(["'`]).*\1$/s.test(literal)) return literal; // a bare label name
  const body = literal.slice(1, -1);
  if (literal.startsWith('`')) return body;
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_, escape: string) => {
    if (/^[xuU]/.test(escape)) return String.fromCodePoint(parseInt(escape.slice(1), 16));
    if (/^[0-7]{3}$/.test(escape)) return String.fromCodePoint(parseInt(escape, 8));
    return ({ a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' } as Record<string, string>)[escape] ?? escape;
  });
}

/**
 * A query as Prometheus receives it from whoever fills in its variables: Grafana's (`$__rate_interval`,
 * `$service`, `${service}`) and Flagger's Go templates (`{{ interval }}`, `{{ namespace }}`, `{{ target }}`,
 * `{{ variables.x }}`). Durations become `1m`; a variable inside a string (a label value, a regex) a word, and
 * anywhere else a number (a threshold, a count), never a name that would read as a metric.
 */
export function withVariablesFilled(expr: string): string {
  const fill = (text: string, other: string) =>
    text
      .replace(/\{\{\s*interval\s*\}\}|\$\{?__(rate_interval|interval|range)(:\w+)?\}?/g, '1m')
      .replace(/\{\{[^}]*\}\}|\$\{\w+(:\w+)?\}|\$[A-Za-z_]\w*/g, other);
  // Strings first, then what lies between them.
  return expr
    .split(/("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? fill(part, 'variable') : fill(part, '1')))
    .join('');
}

export interface ShippedQuery {
  /** Where it is: the file, and the panel, rule or template in it. */
  where: string;
  expr: string;
}

/** Folders that hold no PromQL we ship: dependencies, builds, data, and the tests' own fixtures. */
const NOT_SHIPPED = new Set(['node_modules', 'dist', '.git', '.data', 'test']);

/**
 * Every PromQL query the project ships: in Grafana dashboards (panels and variables), in PrometheusRules
 * (and plain rule files), in Flagger's MetricTemplates and Canaries, in promtool's expression tests, and in
 * the docs' ```promql blocks.
 */
export function shippedQueries(root = projectRoot): ShippedQuery[] {
  return shippedFiles(root).flatMap((file) => {
    const text = readFileSync(path.join(root, file), 'utf8');
    if (file.endsWith('.json')) {
      const json = JSON.parse(text) as Obj;
      return Array.isArray(json.panels) ? dashboardQueriesOf(json, file) : [];
    }
    if (file.endsWith('.md')) return markdownQueries(text, file);
    return parseYamlDocuments(text, file).flatMap((doc) => yamlQueries(doc, file));
  });
}

function shippedFiles(root: string, dir = ''): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return NOT_SHIPPED.has(entry.name) ? [] : shippedFiles(root, file);
    return /\.(ya?ml|json|md)$/.test(entry.name) && !/^package(-lock)?\.json$|^tsconfig/.test(entry.name) ? [file] : [];
  });
}

/** A Grafana dashboard's queries: every panel's targets (rows' panels too) and its query variables. */
export function dashboardQueriesOf(board: Obj, file: string): ShippedQuery[] {
  const panels = ((board.panels ?? []) as Obj[]).flatMap((panel) => [panel, ...((panel.panels ?? []) as Obj[])]);
  const fromPanels = panels.flatMap((panel) =>
    ((panel.targets ?? []) as Obj[]).filter((target) => target.expr).map((target) => ({ where: `${file} panel "${panel.title}" ${target.refId}`, expr: String(target.expr) })),
  );
  const fromVariables = ((board.templating?.list ?? []) as Obj[])
    .filter((variable) => variable.type === 'query')
    .flatMap((variable) => {
      const query = String(typeof variable.query === 'object' ? variable.query.query : variable.query ?? variable.definition ?? '');
      // label_values(selector, label) and query_result(expr) hold PromQL; label_values(label) and metrics(regex) do not.
      const inner = /^\s*(?:label_values\((.*),\s*\w+\s*\)|query_result\((.*)\))\s*$/s.exec(query);
      const expr = inner?.[1] ?? inner?.[2];
      return expr ? [{ where: `${file} variable "${variable.name}"`, expr }] : [];
    });
  return [...fromPanels, ...fromVariables];
}

/** The queries in one YAML document: a PrometheusRule's or a rules file's, a MetricTemplate's, a Canary's inline ones, a promtool test's. */
export function yamlQueries(doc: Obj, file: string): ShippedQuery[] {
  const name = `${doc.kind ?? 'rules'}/${doc.metadata?.name ?? path.basename(file)}`;
  const groups = (doc.kind === 'PrometheusRule' ? doc.spec?.groups : doc.kind === undefined ? doc.groups : undefined) as Obj[] | undefined;
  const rules = (groups ?? []).flatMap((group) => (group.rules ?? []) as Obj[]).map((rule) => ({ where: `${file} ${name} ${rule.alert ?? rule.record}`, expr: String(rule.expr) }));
  const template = doc.kind === 'MetricTemplate' && doc.spec?.query ? [{ where: `${file} ${name}`, expr: String(doc.spec.query) }] : [];
  const canary = doc.kind === 'Canary' ? ((doc.spec?.analysis?.metrics ?? []) as Obj[]).filter((m) => m.query).map((m) => ({ where: `${file} ${name} metric ${m.name}`, expr: String(m.query) })) : [];
  const promtool = ((doc.tests ?? []) as Obj[]).flatMap((test) => ((test.promql_expr_test ?? []) as Obj[]).map((c) => ({ where: `${file} test "${test.name}"`, expr: String(c.expr) })));
  return [...rules, ...template, ...canary, ...promtool];
}

/** The docs' ```promql blocks: each expression, apart from `#` comments, ends at a blank line. */
export function markdownQueries(text: string, file: string): ShippedQuery[] {
  return [...text.matchAll(/^```promql\n([\s\S]*?)^```/gm)].flatMap((block) =>
    block[1]!
      .split(/\n\s*\n/)
      .map((chunk) => chunk.split('\n').filter((line) => !line.trim().startsWith('#')).join('\n').trim())
      .filter(Boolean)
      .map((expr) => ({ where: `${file} promql block`, expr })),
  );
}

/**
 * `where: name` for every metric name a query uses that `known` does not hold; an expression that is not
 * PromQL is reported too. An empty list when every name is known.
 */
export function unknownMetricNames(queries: ShippedQuery[], known: Set<string>): string[] {
  return queries.flatMap(({ where, expr }) => {
    try {
      return metricNames(withVariablesFilled(expr))
        .filter((name) => !known.has(name))
        .map((name) => `${where}: ${name}`);
    } catch (error) {
      return [`${where}: ${(error as Error).message}`];
    }
  });
}
