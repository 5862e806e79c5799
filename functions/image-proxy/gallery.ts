/**
 * The gallery page: a search form, a grid of images served by this proxy, each linking to its page on
 * Pixabay with its author, and the credit. One self-contained HTML document: no scripts, no external
 * styles or fonts. Every interpolated value is escaped by the `html` tag unless it is itself `html`.
 */
import { createHash } from 'node:crypto';
import { MAX_PAGE, PAGE_SIZE } from './pixabay';
import type { ImageSummary } from './summary';

export interface GalleryView {
  query: string;
  page: number;
  images: ImageSummary[];
  totalHits: number;
  /** Shown instead of results: why there are none to show. */
  error?: string;
  /** The images come from the stand-in Pixabay of `npm run demo`: a banner says so, and how to see Pixabay's. */
  demo?: boolean;
}

/** What a person types to see Pixabay's images instead of the demo's. */
export const REAL_KEY_COMMAND = 'API_KEY=<your key> npm start';

export function renderGallery(view: GalleryView): string {
  const pages = Math.min(MAX_PAGE, Math.ceil(view.totalHits / PAGE_SIZE));
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${view.query} · Image gallery</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header class="top">
  <a class="brand" href="/">Image gallery</a>
  <form class="search" action="/" method="get" role="search">
    <input type="search" name="q" value="${view.query}" maxlength="100" aria-label="Search images" placeholder="Search images">
    <button type="submit">Search</button>
  </form>
  ${view.demo ? html`<p class="credit">Demo images, not Pixabay's</p>` : html`<p class="credit">Images from <a href="https://pixabay.com/">Pixabay</a></p>`}
</header>
<main>
  ${view.demo ? demoBanner() : ''}
  <h1>${view.query}</h1>
  ${
    view.error
      ? html`<p class="notice error" role="alert">${view.error}</p>`
      : view.images.length === 0
        ? html`<p class="notice">No images found. Try other words.</p>`
        : html`<p class="count">${view.totalHits.toLocaleString('en-US')} images · page ${view.page} of ${pages}</p>
  <ul class="grid">${view.images.map(card)}
  </ul>
  ${pager(view.query, view.page, pages)}`
  }
</main>
</body>
</html>
`.text;
}

function demoBanner(): Html {
  return html`<p class="notice demo" role="note"><strong>Demo images.</strong> <code>npm run demo</code> made these up with a stand-in for Pixabay, so that the gallery shows without a key. To see Pixabay's photos, get a free <a href="https://pixabay.com/api/docs/">API key</a> and run <code>${REAL_KEY_COMMAND}</code>.</p>`;
}

function card(image: ImageSummary): Html {
  const picture = html`<img src="${image.web.url}" width="${image.web.width}" height="${image.web.height}" alt="${image.tags.join(', ')}" loading="lazy">`;
  const author = image.authorUrl ? html`<a class="author" href="${image.authorUrl}">${image.author}</a>` : html`<span class="author">${image.author}</span>`;
  return html`
    <li class="card">
      ${image.pageUrl ? html`<a class="photo" href="${image.pageUrl}" title="See this image on Pixabay">${picture}</a>` : picture}
      <p>by ${author}${image.tags.length ? html` · <span class="tags">${image.tags.join(', ')}</span>` : ''}</p>
    </li>`;
}

function pager(query: string, page: number, pages: number): Html | '' {
  if (pages <= 1) return '';
  const link = (to: number, label: string, rel: string) => html`<a rel="${rel}" href="${`/?q=${encodeURIComponent(query)}&page=${to}`}">${label}</a>`;
  return html`<nav class="pager" aria-label="Pages">${page > 1 ? link(page - 1, '← Previous', 'prev') : ''}${page < pages ? link(page + 1, 'Next →', 'next') : ''}</nav>`;
}

/** Already-escaped markup. */
class Html {
  constructor(readonly text: string) {}
}

function raw(text: string): Html {
  return new Html(text);
}

/** A template tag that escapes every value unless it is `Html`; arrays are rendered item by item. */
function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  return new Html(strings.reduce((out, text, i) => out + render(values[i - 1]) + text));
}

function render(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(String(value));
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const STYLE = `
:root { color-scheme: light dark; --bg: #f4f5f7; --fg: #1c2228; --muted: #5d6873; --card: #fff; --line: #dfe3e8; --accent: #1f7a4d;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
@media (prefers-color-scheme: dark) { :root { --bg: #14171a; --fg: #e7e9ec; --muted: #9aa5af; --card: #1e2227; --line: #2e343b; --accent: #2f9e68; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.45; }
a { color: inherit; }
.top { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1.5rem;
  padding: .75rem clamp(1rem, 3vw, 2rem); background: var(--card); border-bottom: 1px solid var(--line); }
@media (max-width: 40rem) { .top { position: static; } }
.brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; }
.search { display: flex; flex: 1 1 18rem; max-width: 36rem; }
.search input { flex: 1; min-width: 0; font: inherit; padding: .5rem .8rem; color: inherit; background: var(--bg);
  border: 1px solid var(--line); border-right: 0; border-radius: .5rem 0 0 .5rem; }
.search button { font: inherit; font-weight: 600; padding: .5rem 1.1rem; color: #fff; background: var(--accent);
  border: 0; border-radius: 0 .5rem .5rem 0; cursor: pointer; }
.credit { margin: 0 0 0 auto; color: var(--muted); font-size: .9rem; }
main { max-width: 90rem; margin: 0 auto; padding: 1.25rem clamp(1rem, 3vw, 2rem) 2.5rem; }
h1 { margin: 0 0 .2rem; font-size: 1.5rem; overflow-wrap: anywhere; }
.count { margin: 0 0 1rem; color: var(--muted); }
.notice { padding: .75rem 1rem; border-radius: .5rem; background: var(--card); border: 1px solid var(--line); }
.error { border-color: #d9534f; }
.demo { margin: 0 0 1.25rem; border-color: #d4a72c; background: rgb(212 167 44 / .12); }
.demo code { font-size: .95em; }
.grid { list-style: none; margin: 0; padding: 0; display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 15rem), 1fr)); }
.card { background: var(--card); border-radius: .75rem; overflow: hidden;
  box-shadow: 0 1px 2px rgb(0 0 0 / .08), 0 4px 12px rgb(0 0 0 / .05); }
.card img { display: block; width: 100%; height: auto; aspect-ratio: 3 / 2; object-fit: cover; background: var(--line); }
.photo:hover img { opacity: .9; }
.card p { margin: 0; padding: .55rem .8rem .65rem; font-size: .9rem; color: var(--muted);
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.author { color: var(--fg); font-weight: 600; text-decoration: none; }
a.author:hover { text-decoration: underline; }
.pager { display: flex; justify-content: center; gap: 1rem; margin-top: 1.75rem; }
.pager a { padding: .5rem 1rem; background: var(--card); border: 1px solid var(--line); border-radius: .5rem; text-decoration: none; }
`;

/** Only our own images, the one inline style block above, and forms to ourselves: nothing else may load or run. */
export const GALLERY_CSP = [
  "default-src 'none'",
  "img-src 'self'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');
