import { ConfigError, readBoolean, readHttpUrl, type Env } from '../shared/config';

export interface ImageProxyConfig {
  /** The Pixabay key; undefined makes every route answer 503, so the rest of the system runs without one. */
  apiKey: string | undefined;
  /** Pixabay's search endpoint, always ending in `/` as Pixabay documents it. */
  apiUrl: string;
  /** What the gallery and `GET /image` search for when no `q` is given. */
  defaultQuery: string;
  /** `host` or `host:port` values an image URL may point at; nothing else is ever fetched. */
  imageHosts: ReadonlySet<string>;
  /**
   * The images are demo images from the stand-in Pixabay of `npm run demo`, which alone sets
   * DEMO_IMAGES: the gallery and the log say so. Only a Pixabay on this machine can be a demo.
   */
  demo: boolean;
}

// pixabay.com itself serves `webformatURL` (`/get/...`), the CDN serves `previewURL`.
const PIXABAY_IMAGE_HOSTS = 'cdn.pixabay.com,pixabay.com';

export function readImageProxyConfig(env: Env): ImageProxyConfig {
  const apiUrl = `${readHttpUrl(env, 'PIXABAY_API_URL', 'https://pixabay.com/api/')}/`;
  const demo = readBoolean(env, 'DEMO_IMAGES');
  // A banner saying "demo images" over Pixabay's own would be a lie.
  if (demo && !isLoopback(new URL(apiUrl).hostname)) {
    throw new ConfigError(`DEMO_IMAGES is for npm run demo's stand-in on this machine, but PIXABAY_API_URL is ${apiUrl}`);
  }
  return {
    apiKey: env.API_KEY?.trim() || undefined,
    apiUrl,
    defaultQuery: 'red sky',
    imageHosts: readHosts(env, 'PIXABAY_IMAGE_HOSTS', PIXABAY_IMAGE_HOSTS),
    demo,
  };
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A comma-separated list of `host` or `host:port`, compared as `URL.host` is written (lower case, no default port). */
function readHosts(env: Env, name: string, fallback: string): Set<string> {
  const raw = env[name]?.trim() || fallback;
  const hosts = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  for (const host of hosts) {
    if (!isPlainHost(host)) throw new ConfigError(`${name} must list hosts like cdn.pixabay.com or 127.0.0.1:8080, got "${host}"`);
  }
  if (hosts.length === 0) throw new ConfigError(`${name} must name at least one host`);
  return new Set(hosts.map((host) => host.toLowerCase()));
}

function isPlainHost(entry: string): boolean {
  try {
    return new URL(`http://${entry}`).host === entry.toLowerCase();
  } catch {
    return false;
  }
}
