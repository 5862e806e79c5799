/** What the proxy tells its clients about a hit: `/api/images` sends it as JSON, the gallery renders it. */
import type { Hit } from './pixabay';

export interface ImageSummary {
  id: number;
  tags: string[];
  /** The image's page on Pixabay; null when Pixabay gave no http(s) URL. */
  pageUrl: string | null;
  author: string;
  authorUrl: string | null;
  width: number;
  height: number;
  /** Our URLs for the bytes: clients never see Pixabay's image URLs. */
  preview: Rendition;
  web: Rendition;
}

export interface Rendition {
  url: string;
  width: number;
  height: number;
}

export function summarise(hit: Hit): ImageSummary {
  return {
    id: hit.id,
    tags: hit.tags.split(',').map((tag) => tag.trim()).filter(Boolean),
    pageUrl: httpUrlOrNull(hit.pageURL),
    author: hit.user,
    authorUrl: hit.user && hit.userId ? `https://pixabay.com/users/${encodeURIComponent(hit.user)}-${hit.userId}/` : null,
    width: hit.imageWidth,
    height: hit.imageHeight,
    preview: { url: `/images/${hit.id}?size=preview`, width: hit.previewWidth, height: hit.previewHeight },
    web: { url: `/images/${hit.id}?size=web`, width: hit.webformatWidth, height: hit.webformatHeight },
  };
}

// A link we print must not be `javascript:` or similar, whatever upstream sends.
function httpUrlOrNull(text: string): string | null {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}
