/** Telling whether a response hands a browser a script the client sent: reflected input that is not escaped. */

/** Script injections for HTML text, attributes in either quote, a textarea, and a URL. */
export const XSS_PAYLOADS = [
  '<script>alert(1)</script>',
  '"><svg onload=alert(1)>',
  "'onmouseover='alert(1)",
  '</textarea><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
] as const;

export interface SeenResponse {
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

// A URL attribute that starts with the scheme runs it when followed; anywhere else the bare text is inert.
const SCRIPT_URL_ATTRIBUTE = /\b(?:href|src|action|formaction|xlink:href)\s*=\s*["']?\s*javascript:/i;

/** Why `response` would let a browser run `payload` the client sent, or undefined when it would not. */
export function unsafeReflection(response: SeenResponse, payload: string): string | undefined {
  const type = response.headers['content-type']?.split(';')[0]!.trim().toLowerCase() ?? '';
  // Without a type a browser sniffs, and markup makes it HTML.
  const readAsHtml = type === '' || type === 'text/html' || type.endsWith('+xml') || type.endsWith('/xml');
  if (readAsHtml) {
    if (payload.startsWith('javascript:')) return SCRIPT_URL_ATTRIBUTE.test(response.body) ? `${type || 'an untyped'} body links to ${payload}` : undefined;
    // The tag alone is enough to run, even if the quotes before it were escaped or dropped.
    const tag = payload.slice(Math.max(0, payload.indexOf('<')));
    return response.body.includes(payload) || response.body.includes(tag) ? `${type || 'an untyped'} body holds ${payload} unescaped` : undefined;
  }
  // Any other type holding the input verbatim must forbid sniffing, or an older browser may still render it.
  if (response.body.includes(payload) && response.headers['x-content-type-options']?.toLowerCase() !== 'nosniff') {
    return `${type} body holds ${payload} without X-Content-Type-Options: nosniff`;
  }
  return undefined;
}
