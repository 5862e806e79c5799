/** Links in Markdown pages: which relative links and `#anchors` point at nothing, as GitHub renders them. */
import path from 'node:path';

/** What the checker may ask of the files around a page (paths relative to the project root, `/`-separated). */
export interface Files {
  exists(file: string): boolean;
  /** The text of a Markdown file, to find its headings. */
  read(file: string): string;
}

export interface Link {
  line: number;
  target: string;
}

/** The anchor GitHub gives a heading: lower-case, punctuation dropped, each space a `-` (as github-slugger does). */
export function githubSlug(heading: string): string {
  return plainText(heading)
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a page's headings give, a repeated one numbered `-1`, `-2`, ... as GitHub numbers them. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(text);
    if (!heading) continue;
    const slug = githubSlug(heading[1]!);
    let anchor = slug;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${slug}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

/** The links of a page outside code (fenced blocks and code spans), images included. */
export function markdownLinks(markdown: string): Link[] {
  const links: Link[] = [];
  for (const { text, line } of proseLines(markdown)) {
    const code = [...text.matchAll(/`[^`]*`/g)].map((m) => [m.index, m.index + m[0].length]);
    for (const match of text.matchAll(/!?\[((?:[^[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      if (code.some(([start, end]) => match.index > start! && match.index < end!)) continue;
      links.push({ line, target: match[2]! });
    }
  }
  return links;
}

/** One line per link in `file` (a page at that path) that leads nowhere: a missing file or folder, or an unknown anchor. */
export function brokenLinks(file: string, markdown: string, files: Files): string[] {
  const problems: string[] = [];
  for (const { line, target } of markdownLinks(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(target)) continue; // https:, mailto: and the like: not ours to check
    const hash = target.indexOf('#');
    const linkPath = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const where = `${file}:${line}: ${target}`;
    if (linkPath.startsWith('/')) {
      problems.push(`${where}: a link from the site root; use a path relative to the page`);
      continue;
    }
    const resolved = linkPath === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), linkPath));
    if (resolved.startsWith('../')) {
      problems.push(`${where}: leaves the project`);
    } else if (!files.exists(resolved.replace(/\/$/, '') || '.')) {
      problems.push(`${where}: no such file or folder (${resolved})`);
    } else if (anchor !== undefined) {
      if (!resolved.endsWith('.md')) problems.push(`${where}: an anchor on a file that is not Markdown`);
      else if (!headingAnchors(resolved === file ? markdown : files.read(resolved)).has(anchor)) {
        problems.push(`${where}: no heading with the anchor #${anchor} in ${resolved}`);
      }
    }
  }
  return problems;
}

/** The lines of a page that Markdown renders as prose: those outside fenced code blocks, numbered from 1. */
function proseLines(markdown: string): Array<{ text: string; line: number }> {
  const lines: Array<{ text: string; line: number }> = [];
  let fence: string | undefined;
  markdown.split('\n').forEach((text, i) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(text)?.[1];
    if (fence) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
    } else if (marker) {
      fence = marker;
    } else {
      lines.push({ text, line: i + 1 });
    }
  });
  return lines;
}

/** A heading's text as rendered: links reduced to their text, code spans and emphasis marks removed. */
function plainText(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '')
    .replace(/(\*\*|__|\*)(.+?)\1/g, '$2')
    .trim();
}
