/**
 * The gallery in a real browser: Debian's chromium driven by playwright-core (which never downloads a
 * browser of its own), against image-proxy served from dist/ and the stand-in Pixabay, and as
 * `npm run demo` shows it. Screenshots go to test/screenshots/ (gitignored), for a person to look at.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { projectRoot } from '../../functions/shared/config';
import { startFunction } from '../helpers/functions';
import { fakePixabay } from '../helpers/pixabay';
import { runnerEnv, runStart } from '../helpers/runner';
import { tempDir } from '../helpers/temp';

const CHROMIUM = '/usr/bin/chromium';
const screenshots = path.join(projectRoot, 'test', 'screenshots');
const chromiumMissing = !existsSync(CHROMIUM);
const skipLoudly = chromiumMissing && process.env.CI !== 'true';
if (skipLoudly) console.warn(`\n*** SKIPPING the browser test: ${CHROMIUM} is missing (apt-get install -y chromium) ***\n`);

/** A fresh headless chromium with its own profile folder, closed and removed after the test. */
async function openBrowser(t: ExecutionContext): Promise<BrowserContext> {
  if (chromiumMissing) throw new Error(`${CHROMIUM} is missing: .ci/run must install chromium`);
  const profile = tempDir(t, 'chromium-profile-');
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** Scrolls every (lazy) image into view, then waits until each has loaded or failed. */
async function loadAllImages(page: Page): Promise<void> {
  for (const image of await page.locator('img').all()) await image.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => [...document.images].every((image) => image.complete), undefined, { timeout: 15_000 });
  await page.evaluate(() => window.scrollTo(0, 0));
}

/** Everything the browser complains about: console errors (CSP violations among them), page errors, failed requests. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    // functions-framework answers /favicon.ico 404 itself, before any function sees it.
    if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) problems.push(`console: ${message.text()} ${message.location().url}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => response.status() >= 400 && problems.push(`${response.status()} ${response.url()}`));
  return problems;
}

(skipLoudly ? test.skip : test)('the gallery in chromium: every image loads, links go to Pixabay, the credit shows, search works', async (t) => {
  const pixabay = await fakePixabay(t);
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  const browser = await openBrowser(t);
  const page = browser.pages()[0] ?? (await browser.newPage());
  const problems = watchProblems(page);
  mkdirSync(screenshots, { recursive: true });

  await page.setViewportSize({ width: 1280, height: 900 });
  const response = await page.goto(`${proxy.url}/?q=red+sky`);
  t.is(response?.status(), 200);
  await loadAllImages(page);

  const images = await page.$$eval('.grid img', (all) => all.map((image) => ({ src: image.getAttribute('src'), width: (image as HTMLImageElement).naturalWidth })));
  const expected = pixabay.hitsFor('red sky').slice(0, 20);
  t.is(images.length, 20);
  t.deepEqual(images.map((image) => image.src), expected.map((hit) => `/images/${hit.id}?size=web`));
  t.true(images.every((image) => image.width === 640), `every image decoded: ${JSON.stringify(images.filter((image) => image.width !== 640))}`);

  t.deepEqual(await page.$$eval('.grid a.photo', (links) => links.map((link) => (link as HTMLAnchorElement).href)), expected.map((hit) => hit.pageURL));
  t.deepEqual(await page.$$eval('.grid .author', (names) => names.map((name) => name.textContent)), expected.map((hit) => hit.user));
  t.deepEqual(
    await page.$$eval('.grid a.author', (links) => links.map((link) => (link as HTMLAnchorElement).href)),
    expected.map((hit) => `https://pixabay.com/users/${encodeURIComponent(hit.user)}-${hit.user_id}/`),
  );

  const credit = page.locator('.credit');
  t.true(await credit.isVisible());
  t.is(await credit.innerText(), 'Images from Pixabay');
  t.is(await credit.locator('a').getAttribute('href'), 'https://pixabay.com/');
  t.is(await page.evaluate(() => document.scripts.length), 0, 'no scripts: it works without JavaScript');
  t.is(await page.locator('.demo').count(), 0, 'no demo banner without npm run demo');
  await page.screenshot({ path: path.join(screenshots, 'gallery-desktop.png'), fullPage: true });

  // A phone: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  t.true(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  const columns = await page.$$eval('.grid li', (cards) => new Set(cards.map((card) => card.getBoundingClientRect().left)).size);
  t.is(columns, 1);
  await page.screenshot({ path: path.join(screenshots, 'gallery-mobile.png') });
  await page.setViewportSize({ width: 1280, height: 900 });

  // The form, submitted as a person does: type and press Enter.
  await page.fill('input[name=q]', 'sunset');
  await Promise.all([page.waitForURL(/\?q=sunset$/), page.press('input[name=q]', 'Enter')]);
  t.is(await page.locator('h1').innerText(), 'sunset');
  t.is(await page.locator('.grid a.photo').first().getAttribute('href'), pixabay.hitsFor('sunset')[0]!.pageURL);
  await loadAllImages(page); // leaving earlier would abort their requests
  await Promise.all([page.waitForURL(/page=2$/), page.click('a[rel=next]')]);
  await loadAllImages(page);
  t.is(await page.locator('.grid img').count(), 20);
  t.true(await page.$$eval('.grid img', (all) => all.every((image) => (image as HTMLImageElement).naturalWidth > 0)));

  // What a person types comes back as text, never as markup.
  const evil = '<img src=x onerror=alert(1)>';
  await page.goto(`${proxy.url}/?q=${encodeURIComponent(evil)}`);
  t.is(await page.inputValue('input[name=q]'), evil);
  t.is(await page.locator('h1').innerText(), evil);
  t.is(await page.locator('img[src=x]').count(), 0);

  t.deepEqual(problems, [], 'the browser reported no errors, CSP violations or failed requests');
  t.is(pixabay.calls.elsewhere, 0);
});

(skipLoudly ? test.skip : test)('npm run demo in chromium: the demo images load, and a banner says they are demo images and how to use a real key', async (t) => {
  const env = await runnerEnv(t);
  const demo = runStart(t, env, { args: ['--demo'] });
  await demo.ready;
  const browser = await openBrowser(t);
  const page = browser.pages()[0] ?? (await browser.newPage());
  const problems = watchProblems(page);
  mkdirSync(screenshots, { recursive: true });

  await page.setViewportSize({ width: 1280, height: 900 });
  const response = await page.goto(`http://localhost:${env.IMAGE_PROXY_PORT}/`);
  t.is(response?.status(), 200);
  await loadAllImages(page);
  const widths = await page.$$eval('.grid img', (all) => all.map((image) => (image as HTMLImageElement).naturalWidth));
  t.is(widths.length, 20);
  t.true(widths.every((width) => width > 0), `every demo image decoded: ${JSON.stringify(widths)}`);

  const banner = page.locator('.demo');
  t.true(await banner.isVisible());
  t.is(
    await banner.innerText(),
    "Demo images. npm run demo made these up with a stand-in for Pixabay, so that the gallery shows without a key. To see Pixabay's photos, get a free API key and run API_KEY=<your key> npm start.",
  );
  t.is(await banner.locator('a').getAttribute('href'), 'https://pixabay.com/api/docs/');
  const bannerBox = (await banner.boundingBox())!;
  t.true(bannerBox.y + bannerBox.height <= 900, 'the banner is on the first screen');
  await page.screenshot({ path: path.join(screenshots, 'demo-desktop.png') });

  // Searching keeps the banner: every page of the demo says what it shows.
  await page.fill('input[name=q]', 'sunset');
  await Promise.all([page.waitForURL(/\?q=sunset$/), page.press('input[name=q]', 'Enter')]);
  await loadAllImages(page);
  t.true(await page.locator('.demo').isVisible());
  t.true(await page.$$eval('.grid img', (all) => all.length === 20 && all.every((image) => (image as HTMLImageElement).naturalWidth > 0)));

  await page.setViewportSize({ width: 390, height: 844 });
  t.true(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the banner fits a phone');
  await page.screenshot({ path: path.join(screenshots, 'demo-mobile.png') });

  t.deepEqual(problems, [], 'the browser reported no errors, CSP violations or failed requests');
  demo.child.kill('SIGTERM');
  t.is(await demo.exited, 0);
});
