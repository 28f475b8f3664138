// Browser tests of the demo page and danmaku.js in Debian's Chromium, driven
// by playwright-core, against the real `danmaku serve`.
//
//   cd web && npm ci && node --test test/browser.test.mjs
//
// Without /usr/bin/chromium or node_modules the tests skip, unless CI is set:
// then a missing prerequisite fails them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, startServe } from './server.mjs';

const CHROMIUM = '/usr/bin/chromium';
const missing = [];
if (!existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install chromium)`);
/** @type {typeof import('playwright-core') | null} */
let pw = null;
try {
  pw = await import('playwright-core');
} catch {
  missing.push('playwright-core (cd web && npm ci)');
}
const skip = missing.length && !process.env.CI ? `browser tests skipped: missing ${missing.join(', ')}` : false;
if (skip) console.log('# ' + skip);

const artifacts = join(repoRoot, 'artifacts');

/** @type {Awaited<ReturnType<typeof startServe>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  if (skip) return;
  if (missing.length) throw new Error('CI is set and browser test prerequisites are missing: ' + missing.join(', '));
  server = await startServe();
  // launch() gives the browser a fresh temporary profile (user data dir) of
  // its own and removes it on close; it refuses a --user-data-dir argument.
  browser = await /** @type {NonNullable<typeof pw>} */ (pw).chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * Opens the demo in a fresh context (its own network conditions), and
 * records dialogs, page errors and requests.
 * @param {string} room
 */
async function open(room) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const rec = {
    /** @type {string[]} */ dialogs: [],
    /** @type {string[]} */ errors: [],
    /** @type {{url: string, at: number}[]} */ requests: [],
    /** @type {{url: string, status: number, at: number}[]} */ responses: [],
  };
  page.on('dialog', (d) => { rec.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => rec.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') rec.errors.push(m.text()); });
  page.on('request', (r) => rec.requests.push({ url: r.url(), at: Date.now() }));
  page.on('response', (r) => rec.responses.push({ url: r.url(), status: r.status(), at: Date.now() }));
  await page.goto(`${server.base}/?room=${room}`);
  await page.waitForFunction(() => /** @type {any} */ (window).__danmaku?.states.includes('live'), null, { timeout: 15000 });
  return { context, page, rec };
}

/**
 * Posts through the page's form and returns what the server accepted.
 * @param {import('playwright-core').Page} page
 * @param {string} text
 * @param {{mode?: string, color?: string}} [opts]
 */
async function postViaForm(page, text, opts = {}) {
  const before = await page.evaluate(() => /** @type {any} */ (window).__danmaku.posted.length);
  await page.fill('#text', text);
  if (opts.mode) await page.selectOption('#mode', opts.mode);
  if (opts.color) await page.fill('#color', opts.color);
  await page.click('#send');
  await page.waitForFunction((n) => /** @type {any} */ (window).__danmaku.posted.length > n, before, { timeout: 10000 });
  return page.evaluate(() => { const p = /** @type {any} */ (window).__danmaku.posted; return p[p.length - 1]; });
}

test('a post on page A flies across page B within 2 s', { skip, timeout: 60000 }, async () => {
  const a = await open('live1');
  const b = await open('live1');
  const text = 'hello from A ' + Date.now();
  const posted = await postViaForm(a.page, text);
  await b.page.waitForFunction((id) => /** @type {any} */ (window).__danmaku.shownAt[id], posted.id, { timeout: 5000 });
  const shownAt = await b.page.evaluate((id) => /** @type {any} */ (window).__danmaku.shownAt[id], posted.id);
  const latency = shownAt - posted.sentAt;
  console.log(`# post on A → shown on B: ${latency} ms`);
  assert.ok(latency < 2000, `shown ${latency} ms after the post; want < 2000`);

  // It is on B's stage, as text, and it moves right to left.
  const item = b.page.locator(`#stage .dm-item[data-id="${posted.id}"]`);
  assert.equal(await item.textContent(), text);
  const x1 = (await item.boundingBox())?.x ?? NaN;
  await b.page.waitForTimeout(300);
  const x2 = (await item.boundingBox())?.x ?? NaN;
  assert.ok(x2 < x1, `the comment did not move left: x ${x1} then ${x2}`);
  const received = await b.page.evaluate((id) => /** @type {any} */ (window).__danmaku.received[id], posted.id);
  assert.equal(received, 1);
  assert.deepEqual([...a.rec.errors, ...b.rec.errors], []);
  await a.context.close();
  await b.context.close();
});

test('a comment that looks like HTML shows as literal text and runs nothing', { skip, timeout: 60000 }, async () => {
  const a = await open('xss');
  const b = await open('xss');
  const evil = '<img src=x onerror=alert(1)>';
  const posted = await postViaForm(a.page, evil);
  await b.page.waitForFunction((id) => /** @type {any} */ (window).__danmaku.shown[id] === 1, posted.id, { timeout: 5000 });
  for (const { page } of [a, b]) {
    const item = page.locator(`#stage .dm-item[data-id="${posted.id}"]`);
    assert.equal(await item.textContent(), evil);
    assert.ok(await item.isVisible(), 'the literal text is not visible');
    assert.equal(await page.locator('#stage img, #log img').count(), 0, 'an <img> element was created');
  }
  await b.page.waitForTimeout(500); // an onerror would have fired by now
  assert.deepEqual([...a.rec.dialogs, ...b.rec.dialogs], [], 'a dialog opened');
  assert.equal(a.rec.requests.concat(b.rec.requests).filter((r) => /\/x$/.test(r.url)).length, 0, 'the img src was requested');
  await a.context.close();
  await b.context.close();
});

test('page B offline for 15 s catches up through segments, every message once', { skip, timeout: 90000 }, async () => {
  const a = await open('gap');
  const b = await open('gap');
  /** @type {string[]} */
  const ids = [];
  const post = async (/** @type {string} */ text) => {
    const r = await a.page.evaluate((t) => /** @type {any} */ (window).__danmaku.feed.post(t), text);
    ids.push(r.id);
  };
  await post('before the gap');
  await b.page.waitForFunction((id) => /** @type {any} */ (window).__danmaku.received[id], ids[0], { timeout: 5000 });

  await b.context.setOffline(true);
  const offlineAt = Date.now();
  for (let i = 0; Date.now() - offlineAt < 15000; i++) {
    await post(`during the gap #${i}`);
    await a.page.waitForTimeout(600);
  }
  await b.context.setOffline(false);
  const onlineAt = Date.now();
  await post('after the gap');

  await b.page.waitForFunction((want) => {
    const h = /** @type {any} */ (window).__danmaku;
    return want.every((/** @type {string} */ id) => h.received[id] && h.shown[id]);
  }, ids, { timeout: 30000 });
  const caughtUp = Date.now() - onlineAt;
  const hook = await b.page.evaluate(() => {
    const h = /** @type {any} */ (window).__danmaku;
    return { received: h.received, shown: h.shown, states: h.states, stats: h.feed.stats() };
  });
  for (const id of ids) {
    assert.equal(hook.received[id], 1, `message ${id} received ${hook.received[id]} times`);
    assert.equal(hook.shown[id], 1, `message ${id} shown ${hook.shown[id]} times`);
  }
  assert.equal(hook.stats.duplicates, 0);
  // offline while the network was gone, then catching up, then live.
  const s = hook.states;
  const off = s.indexOf('offline');
  assert.ok(off >= 0 && s.indexOf('catching-up', off) > off && s.indexOf('live', s.indexOf('catching-up', off)) > 0,
    `states ${s.join(' → ')}`);

  const after = b.rec.responses.filter((r) => r.at >= onlineAt);
  const segments = after.filter((r) => r.url.includes('/segments/') && r.status === 200);
  const buckets = after.filter((r) => r.url.includes('/buckets/') && r.at < onlineAt + caughtUp);
  const firstBack = after.length ? after[0].at - onlineAt : NaN;
  console.log(`# ${ids.length} messages; offline 15 s; first answer ${firstBack} ms after going online; all shown after ${caughtUp} ms, with ${segments.length} segment and ${buckets.length} bucket requests; states ${s.join(' → ')}`);
  assert.ok(segments.length >= 1, 'no segment request after coming back online');
  assert.ok(buckets.length <= 12, `${buckets.length} bucket requests to catch up 15 s: segments should cover most`);

  // Once a URL answered 200 it is never asked again.
  const ok = new Map();
  for (const r of b.rec.responses.filter((x) => x.status === 200 && /\/(buckets|segments)\//.test(x.url))) {
    ok.set(r.url, (ok.get(r.url) || 0) + 1);
  }
  for (const [url, n] of ok) assert.equal(n, 1, `${url} answered 200 ${n} times`);
  assert.deepEqual(b.rec.errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|net::/.test(e)), []);
  await a.context.close();
  await b.context.close();
});

test('screenshot of the demo', { skip, timeout: 60000 }, async () => {
  const a = await open('screenshot');
  const b = await open('screenshot');
  const comments = [
    ['incoming!', 'top', '#fe0302'], ['233333', 'scroll', '#ffffff'], ['what a save!', 'scroll', '#ffd302'],
    ['GG', 'bottom', '#00cd00'], ['awsl', 'scroll', '#4266be'], ['<b>not bold</b>', 'scroll', '#ffffff'],
    ['this is the best stream today', 'scroll', '#cc0273'], ['hi from the demo', 'scroll', '#ffffff'],
  ];
  /** @type {string[]} */
  const ids = [];
  for (const [text, mode, color] of comments) {
    const r = await a.page.evaluate(([t, m, c]) => /** @type {any} */ (window).__danmaku.feed.post(t, { mode: m, color: c }), [text, mode, color]);
    ids.push(r.id);
    await a.page.waitForTimeout(250);
  }
  await postViaForm(a.page, 'posted with the form');
  await b.page.waitForFunction((want) => want.every((/** @type {string} */ id) => /** @type {any} */ (window).__danmaku.shown[id]), ids, { timeout: 10000 });
  await b.page.waitForTimeout(2500);
  // Lanes keep comments apart: no two boxes on stage overlap.
  for (const { page } of [a, b]) {
    const boxes = await page.$$eval('#stage .dm-item', (els) => els.map((e) => {
      const r = e.getBoundingClientRect();
      return { id: /** @type {HTMLElement} */ (e).dataset.id, x: r.x, y: r.y, w: r.width, h: r.height };
    }));
    assert.ok(boxes.length >= 5, `${boxes.length} comments on stage`);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const p = boxes[i], q = boxes[j];
        const overlap = p.x < q.x + q.w - 1 && q.x < p.x + p.w - 1 && p.y < q.y + q.h - 1 && q.y < p.y + p.h - 1;
        assert.ok(!overlap, `comments ${p.id} and ${q.id} overlap: ${JSON.stringify([p, q])}`);
      }
    }
  }
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, 'demo.png');
  await a.page.screenshot({ path }); // A posted: its panel shows post → display latency
  console.log(`# screenshot: ${path}`);
  assert.ok(existsSync(path));
  await a.context.close();
  await b.context.close();
});
