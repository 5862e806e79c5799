/**
 * Finding secrets in plain text, for the test that scans every tracked file: a Kubernetes Secret with
 * data, a private key, or a value that looks like a real credential. A value is not a credential when
 * it is a placeholder ("replace-with-...", "<your key>", "changeme", "test-key") or a reference
 * (`$PGPASSWORD`, `${password}`, `{{ .Values.x }}`); SealedSecret ciphertext is not one either.
 */
import { parseAllDocuments } from 'yaml';

export interface Finding {
  file: string;
  line: number;
  rule: string;
}

// A value that says what it is ("replace-with-...", "test-key", "not-the-password") is describing a secret, not being one.
const placeholder = /replace|change.?me|example|your|placeholder|dummy|fake|test|sample|redacted|password|xxx|\*{3}|\.{3}|^<.*>$/i;
const allCapsPlaceholder = /^[A-Z][A-Z_]*$/; // key=KEY, password=PASSWORD
const genericWord = /^(?:password|passwd|pass|pwd|secret|token|key|apikey|api-key|user)$/i; // user:password@host
const reference = /^(?:\$|\{\{|%|<)/;

/** Formats that are credentials wherever they appear. */
const tokenFormats: Array<[rule: string, pattern: RegExp]> = [
  ['private key', /-{5}BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-{5}/],
  ['AWS access key id', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['JSON Web Token', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/],
  ['Pixabay API key', /\b\d{5,12}-[0-9a-f]{25,32}\b/],
  ['GitHub token', /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})/],
  ['Google API key', /\bAIza[0-9A-Za-z_-]{35}\b/],
  ['Slack token', /\bxox[abposr]-[A-Za-z0-9-]{10,}/],
  ['secret key (sk-...)', /\bsk(?:_live|_test)?[-_][A-Za-z0-9]{24,}/],
];

/** `NAME=value` (dotenv, shell, libpq keywords), `name: 'value'` (code, YAML), `scheme://user:password@host`. */
const assignment = /(?:^|[\s;&|(`'"])(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)=("[^"]*"(?=[\s;&|)]|$)|'[^']*'(?=[\s;&|)]|$)|[^\s'"`;&|)]*)/g;
const quotedSetting = /([A-Za-z_][A-Za-z0-9_.-]*)['"]?\s*[:=]\s*(['"`])((?:(?!\2).)*)\2(?=[\s,;)}\]]|$)/g;
const queryCredential = /[?&](?:key|api_?key|token|access_token|password)=([^&\s'"`#)]+)/gi;
const urlPassword = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@'"`]+:([^\s/@'"`]+)@/gi;

/** Every plaintext secret in one file; `content` is the file's text. */
export function findPlaintextSecrets(file: string, content: string): Finding[] {
  const findings: Finding[] = [];
  const lines = content.split('\n');
  lines.forEach((text, index) => {
    const found = (rule: string) => findings.push({ file, line: index + 1, rule });
    for (const [rule, pattern] of tokenFormats) if (pattern.test(text)) found(rule);
    for (const [, name, value] of text.matchAll(assignment)) {
      if (isSecretName(name!) && isCredential(unquote(value!))) found(`${name}= with a literal value`);
    }
    for (const [, name, , value] of text.matchAll(quotedSetting)) {
      if (isSecretName(name!) && isCredential(value!)) found(`${name}: with a literal value`);
    }
    for (const [, value] of text.matchAll(queryCredential)) {
      if (isCredential(decodeURIComponentSafe(value!))) found('credential in a URL query');
    }
    for (const [, password] of text.matchAll(urlPassword)) {
      if (isCredential(decodeURIComponentSafe(password!))) found('URL with a password');
    }
  });
  for (const { text, firstLine } of structuredParts(file, content)) {
    for (const document of parseAllDocuments(text)) {
      if (document.errors.length) continue;
      for (const problem of problemsIn(document.toJS())) findings.push({ file, line: firstLine, rule: problem });
    }
  }
  return findings;
}

/** Names whose value is a secret: PGPASSWORD, API_KEY, aws_secret_access_key, apiKey; not secretName, API_KEY_FILE. */
function isSecretName(name: string): boolean {
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  if (namingWords.has(words.at(-1) ?? '')) return false;
  return words.some((word) => secretWord.test(word)) || /(?:^|_)(?:api|access|private|secret)_key(?:$|_)/.test(words.join('_'));
}
const secretWord = /^(?:[a-z]*password|passwd|pwd|secret|token|credentials?|apikey)$/;
/** A last word that makes the setting name or point at a secret rather than hold one. */
const namingWords = new Set(['name', 'ref', 'file', 'path', 'dir', 'url', 'uri', 'type', 'length', 'env', 'var', 'field', 'header', 'id', 'names', 'refs']);

function isCredential(value: string): boolean {
  const trimmed = value.trim();
  // shorter than 8 characters is no credential worth leaking (`API_KEY: 'k'`, `{ APIKEY: 'AgA=' }` in tests)
  return trimmed.length >= 8 && ![placeholder, allCapsPlaceholder, genericWord, reference].some((pattern) => pattern.test(trimmed));
}

function unquote(value: string): string {
  return /^(["']).*\1$/.test(value) ? value.slice(1, -1) : value;
}

function decodeURIComponentSafe(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The parts of a file that hold YAML or JSON: the whole file, or a README's fenced code blocks. */
function structuredParts(file: string, content: string): Array<{ text: string; firstLine: number }> {
  if (/\.(ya?ml|json)$/i.test(file)) return [{ text: content, firstLine: 1 }];
  if (!/\.md$/i.test(file)) return [];
  const parts = [];
  for (const match of content.matchAll(/^```(?:ya?ml|json)[^\n]*\n([\s\S]*?)^```/gm)) {
    parts.push({ text: match[1]!, firstLine: content.slice(0, match.index).split('\n').length + 1 });
  }
  return parts;
}

/** Secrets in a parsed document: a Secret with data, and secret-named settings with literal values. */
function problemsIn(node: unknown, path = ''): string[] {
  if (Array.isArray(node)) return node.flatMap((item, i) => problemsIn(item, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return [];
  const object = node as Record<string, unknown>;
  const problems: string[] = [];
  if (object.kind === 'Secret' && (hasEntries(object.data) || hasEntries(object.stringData))) {
    problems.push(`kind: Secret with data at ${path || '/'}`);
  }
  // an env entry: { name: PGPASSWORD, value: ... }
  if (typeof object.name === 'string' && typeof object.value === 'string' && isSecretName(object.name) && isCredential(object.value)) {
    problems.push(`${object.name} with a literal value at ${path || '/'}`);
  }
  for (const [key, value] of Object.entries(object)) {
    if (object.kind === 'SealedSecret' && key === 'spec') continue; // ciphertext, and the template holds no values
    if (typeof value === 'string' && isSecretName(key) && isCredential(value)) problems.push(`${key} with a literal value at ${path}/${key}`);
    else problems.push(...problemsIn(value, `${path}/${key}`));
  }
  return problems;
}

function hasEntries(value: unknown): boolean {
  return !!value && typeof value === 'object' && Object.keys(value).length > 0;
}
