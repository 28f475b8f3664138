// Fast tests of danmaku.js without a browser or a server: the pure parts
// (decoding, planning, backoff, de-duplication, replay scheduling, lanes)
// and the feed's loop against a small in-memory origin.
//
//   node --test web/test/unit.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffDelay, createFeed, createReplay, decodeBody, Dedup, dueMessages, pickRow, planNext,
  postMessage, scrollLaneFreeAt, DanmakuError,
} from '../danmaku.js';

/**
 * Lays out messages the way the bucketer does (one entry per message).
 * @param {string} room
 * @param {number} start
 * @param {number} seconds
 * @param {{seq: number, ms: number, text: string, user?: number, color?: number, mode?: number}[]} msgs ms since start
 */
function encode(room, start, seconds, msgs) {
  const b = /** @type {any} */ ({ v: 1, room, start, seconds });
  if (!msgs.length) return b;
  let ps = 0, pm = 0;
  b.seq = msgs.map((m) => { const d = m.seq - ps; ps = m.seq; return d; });
  b.ms = msgs.map((m) => { const d = m.ms - pm; pm = m.ms; return d; });
  b.users = [['u1', 'Alice'], ['u2', 'Bo']];
  b.user = msgs.map((m) => m.user ?? 0);
  b.text = msgs.map((m) => m.text);
  b.color = msgs.map((m) => m.color ?? 0xffffff);
  b.mode = msgs.map((m) => m.mode ?? 0);
  return b;
}

test('decodeBody reads the columnar layout', () => {
  // The README's example bucket.
  const body = decodeBody({
    v: 1, room: 'lobby', start: 1795855010, seconds: 1, seq: [2, 1], count: [1, 2], ms: [704, 8],
    user: [0, 1], users: [['u42', '小明'], ['', '']], text: ['前方高能 🎉', '233333', 'awsl'],
    color: [16646914, 16777215, 16777215], mode: [1, 0, 0],
  });
  assert.equal(body.room, 'lobby');
  assert.deepEqual(body.messages.map((m) => [m.id, m.second, m.offsetMs, m.text, m.color, m.mode, m.userId, m.userName]), [
    ['2', 1795855010, 704, '前方高能 🎉', '#fe0302', 'top', 'u42', '小明'],
    ['3.0', 1795855010, 712, '233333', '#ffffff', 'scroll', '', ''],
    ['3.1', 1795855010, 712, 'awsl', '#ffffff', 'scroll', '', ''],
  ]);
  assert.equal(body.messages[0].time, 1795855010704);
  // A segment spreads its entries over ten seconds; an empty body is fine.
  const seg = decodeBody(encode('r', 100, 10, [{ seq: 5, ms: 1500, text: 'a' }, { seq: 9, ms: 9999, text: 'b' }]));
  assert.deepEqual(seg.messages.map((m) => [m.id, m.second, m.offsetMs]), [['5', 101, 500], ['9', 109, 999]]);
  assert.deepEqual(decodeBody({ v: 1, room: 'r', start: 5, seconds: 1 }).messages, []);
});

test('decodeBody reads the optional columns: index after a redaction, avatars, badges, folded counts, dropped', () => {
  // A batch entry 40 that lost its middle message, a lone entry 42, two users.
  const body = decodeBody({
    v: 1, room: 'r', start: 100, seconds: 1, dropped: 12, seq: [40, 2], count: [2, 1], ms: [5, 0], user: [0, 1],
    users: [['u1', 'Ann'], ['u2', 'Bo']], avatar: ['https://a.example/1.png', ''], badges: [['mod'], []],
    text: ['a', 'c', 'lone'], index: [0, 2, -1], dup: [1, 5, 1],
  });
  assert.equal(body.dropped, 12);
  assert.deepEqual(body.messages.map((m) => [m.id, m.avatar, m.badges, m.count]), [
    ['40.0', 'https://a.example/1.png', ['mod'], undefined],
    ['40.2', 'https://a.example/1.png', ['mod'], 5],
    ['42', undefined, undefined, undefined],
  ]);
  assert.equal(decodeBody({ v: 1, room: 'r', start: 5, seconds: 1 }).dropped, 0);
  const bad = {
    'index not rising': { index: [2, 0, -1] },
    'lone index in a batch': { index: [-1, 2, -1] },
    'dup zero': { dup: [1, 0, 1] },
    'avatar column': { avatar: ['x'] },
    'negative dropped': { dropped: -1 },
  };
  for (const [name, patch] of Object.entries(bad)) {
    const w = {
      v: 1, room: 'r', start: 100, seconds: 1, seq: [40, 2], count: [2, 1], ms: [5, 0], user: [0, 1],
      users: [['u1', 'Ann'], ['u2', 'Bo']], text: ['a', 'c', 'lone'], ...patch,
    };
    assert.throws(() => decodeBody(w), /malformed/, name);
  }
});

test('decodeBody refuses malformed bodies', () => {
  const good = () => encode('r', 100, 1, [{ seq: 5, ms: 10, text: 'a' }, { seq: 6, ms: 20, text: 'b' }]);
  const cases = {
    version: (/** @type {any} */ b) => { b.v = 2; },
    room: (/** @type {any} */ b) => { b.room = 'a/b'; },
    seconds: (/** @type {any} */ b) => { b.seconds = 5; },
    'short text column': (/** @type {any} */ b) => { b.text.pop(); },
    'sequence out of order': (/** @type {any} */ b) => { b.seq[1] = 0; },
    'offset past the body': (/** @type {any} */ b) => { b.ms[1] = 1000; },
    'unknown mode': (/** @type {any} */ b) => { b.mode[0] = 7; },
    'unknown user': (/** @type {any} */ b) => { b.user[0] = 9; },
  };
  for (const [name, spoil] of Object.entries(cases)) {
    const b = good();
    spoil(b);
    assert.throws(() => decodeBody(b), /malformed/, name);
  }
});

test('planNext: live, catch-up through segments, cap', () => {
  const at = (/** @type {number} */ next, /** @type {number} */ now, /** @type {number} */ sealed, /** @type {number} */ headAgeMs, extra = {}) =>
    planNext({ next, nowMs: now * 1000 + 400, sealed, headAgeMs, ...extra });
  assert.deepEqual(at(1000, 1000, 999, 60000), { kind: 'bucket', second: 1000, catchUp: false });
  assert.deepEqual(at(997, 1000, 999, 60000), { kind: 'bucket', second: 997, catchUp: false });
  assert.deepEqual(at(980, 1000, 990, 3000), { kind: 'head' });
  assert.deepEqual(at(983, 1000, 999, 500), { kind: 'segment', second: 980 });
  assert.deepEqual(at(989, 1000, 999, 500), { kind: 'bucket', second: 989, catchUp: true });
  assert.deepEqual(at(990, 1000, 998, 500), { kind: 'bucket', second: 990, catchUp: true });
  assert.deepEqual(at(980, 1000, 999, 500, { noSegIn: 980 }), { kind: 'bucket', second: 980, catchUp: true });
  assert.deepEqual(at(900, 1000, 999, 500), { kind: 'skip', from: 900, to: 940 });
  assert.deepEqual(at(900, 1000, 999, 500, { maxCatchUp: 120 }), { kind: 'segment', second: 900 });
});

test('backoffDelay is full jitter under an exponential cap', () => {
  const caps = [100, 200, 400, 800, 1000, 1000];
  caps.forEach((cap, attempt) => {
    assert.equal(backoffDelay(attempt, 100, 1000, 0), 0);
    assert.ok(Math.abs(backoffDelay(attempt, 100, 1000, 0.999999) - cap) < 1, `attempt ${attempt}`);
  });
  assert.equal(backoffDelay(5000, 100, 1000, 0.5), 500);
});

test('Dedup remembers a bounded window of ids', () => {
  const d = new Dedup(3);
  assert.deepEqual(['1', '2', '3', '2'].map((id) => d.add(id)), [true, true, true, false]);
  assert.equal(d.add('4'), true); // forgets 1
  assert.equal(d.add('1'), true); // forgets 2
  assert.deepEqual(['3', '4', '1'].map((id) => d.add(id)), [false, false, false]);
  assert.equal(d.seen.size, 3);
});

test('dueMessages picks (from, to] from a sorted list', () => {
  const ms = [100, 200, 200, 300, 400].map((time, i) => /** @type {any} */ ({ id: String(i), time }));
  assert.deepEqual(dueMessages(ms, 100, 300).map((m) => m.id), ['1', '2', '3']);
  assert.deepEqual(dueMessages(ms, 0, 99), []);
  assert.deepEqual(dueMessages(ms, 400, 1000), []);
  assert.deepEqual(dueMessages(ms, -1, 1e9).length, 5);
});

test('rows: scrolling comments take the first row they can enter, pinned ones an empty row of their third', () => {
  const row = (/** @type {number} */ enterAt, /** @type {number} */ clearAt) => ({ enterAt, clearAt });
  // Six rows: the top third is rows 0-1, the bottom third rows 4-5.
  const rows = [row(5, 9), row(0, 9), row(0, 0), row(0, 0), row(0, 9), row(9, 9)];
  assert.equal(pickRow(rows, 'scroll', 1), 1, 'row 0 cannot be entered yet');
  assert.equal(pickRow(rows, 'top', 1), -1, 'rows 0-1 still hold comments');
  assert.equal(pickRow(rows, 'top', 9), 0);
  assert.equal(pickRow(rows, 'bottom', 1), -1, 'rows 4-5 still hold comments');
  assert.equal(pickRow(rows, 'bottom', 9), 5, 'bottom fills from the bottom');
  assert.equal(pickRow([row(3, 3)], 'scroll', 1), -1);
  assert.equal(pickRow([row(3, 3)], 'top', 3), 0, 'one row: pinned still has a third of it');
  assert.equal(pickRow([], 'scroll', 0), -1);
  // 100 px wide, 20 px gap, 0.1 px/ms: the next may enter 1200 ms later.
  assert.equal(scrollLaneFreeAt(1000, 100, 20, 0.1), 2200);
});

/**
 * An in-memory origin with the real one's behaviour: held reads, 404
 * not_sealed on a hold timeout, 404 future, head, buckets and segments.
 * headLagMs serves head as a cache would after keeping it that long.
 * @param {{room: string, messages: Map<number, {seq: number, ms: number, text: string}[]>, fault?: (url: string, n: number) => Response | 'network' | null, headLagMs?: number}} o
 */
function fakeOrigin(o) {
  /** @type {string[]} */
  const calls = [];
  const sealedAt = (/** @type {number} */ s) => (s + 1) * 1000 + 100;
  const json = (/** @type {number} */ status, /** @type {any} */ v) =>
    new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
  const wait = (/** @type {number} */ ms, /** @type {AbortSignal|undefined} */ signal) => new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(new DOMException('aborted', 'AbortError')); });
  });
  /** @type {typeof fetch} */
  const fetchImpl = async (input, init) => {
    const url = String(input);
    calls.push(url);
    const f = o.fault?.(url, calls.length);
    if (f === 'network') throw new TypeError('Failed to fetch');
    if (f) return f;
    const path = new URL(url, 'http://x').pathname;
    if (path.endsWith('/head')) {
      const at = Date.now() - (o.headLagMs ?? 0);
      return json(200, { now_ms: at, sealed: Math.floor((at - 100) / 1000) - 1, bucket_seconds: 1, poll_ms: 1000 });
    }
    const m = /\/(buckets|segments)\/(\d+)\.json$/.exec(path);
    if (!m) return json(404, { code: 'not_found', message: path });
    const start = Number(m[2]);
    const seconds = m[1] === 'segments' ? 10 : 1;
    const last = start + seconds - 1;
    if (last > Math.floor(Date.now() / 1000) + 2) return json(404, { code: 'future', message: 'too far' });
    if (Date.now() < sealedAt(last)) {
      const hold = sealedAt(last) - Date.now();
      if (hold > 3000) {
        await wait(3000, init?.signal ?? undefined);
        return json(404, { code: 'not_sealed', message: 'ask again' });
      }
      await wait(hold, init?.signal ?? undefined);
    }
    /** @type {{seq: number, ms: number, text: string}[]} */
    const msgs = [];
    for (let s = start; s <= last; s++) {
      for (const x of o.messages.get(s) ?? []) msgs.push({ ...x, ms: (s - start) * 1000 + x.ms });
    }
    return json(200, encode(o.room, start, seconds, msgs));
  };
  return { fetch: fetchImpl, calls };
}

/** Resolves when cond() holds, polling; rejects after ms. */
async function until(/** @type {() => boolean} */ cond, ms = 8000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('feed: live buckets in order, each message once, clean stop', { timeout: 15000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const messages = new Map([
    [now, [{ seq: 10, ms: 5, text: 'a' }, { seq: 11, ms: 500, text: 'b' }]],
    // A repeat of id 11 (as a misbehaving cache could serve) and a new one.
    [now + 1, [{ seq: 11, ms: 0, text: 'b again' }, { seq: 12, ms: 300, text: 'c' }]],
  ]);
  const origin = fakeOrigin({ room: 'r', messages });
  /** @type {string[]} */
  const got = [];
  /** @type {string[]} */
  const states = [];
  const feed = createFeed({ room: 'r', start: now, fetch: origin.fetch, onMessages: (ms) => got.push(...ms.map((m) => m.text)), onState: (s) => states.push(s) });
  await until(() => got.length >= 3);
  assert.deepEqual(got, ['a', 'b', 'c']);
  assert.equal(feed.stats().duplicates, 1);
  assert.equal(feed.state(), 'live');
  await feed.stop();
  assert.equal(feed.state(), 'stopped');
  assert.deepEqual(states.slice(-2), ['live', 'stopped']);
  const n = origin.calls.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(origin.calls.length, n, 'requests after stop');
  // Never the same object URL twice.
  const objects = origin.calls.filter((u) => /\/(buckets|segments)\//.test(u));
  assert.equal(new Set(objects).size, objects.length, objects.join('\n'));
});

test('feed: behind a stale head, each second is still read as it seals', { timeout: 15000 }, async () => {
  // Start halfway through a second: a feed that kept its poll interval from
  // a request that was not held would stay half a second late.
  await new Promise((r) => setTimeout(r, 1500 - (Date.now() % 1000)));
  const origin = fakeOrigin({ room: 's', messages: new Map(), headLagMs: 900 });
  /** @type {Map<number, number>} */
  const late = new Map();
  const feed = createFeed({
    room: 's', fetch: origin.fetch,
    onEvent: (e) => {
      if (e.type === 'request' && e.kind === 'bucket' && e.status === 200) late.set(e.second, Date.now() - ((e.second + 1) * 1000 + 100));
    },
  });
  await until(() => late.size >= 5, 10000);
  await feed.stop();
  const seconds = [...late.keys()].sort((a, b) => a - b);
  for (const s of seconds.slice(2)) {
    assert.ok((late.get(s) ?? 0) <= 150, `second ${s} answered ${late.get(s)} ms after it sealed: ${JSON.stringify([...late])}`);
  }
});

test('feed: a gap is caught up through segments, and the cap skips what is older', { timeout: 15000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const messages = new Map([[now - 40, [{ seq: 1, ms: 0, text: 'too old' }]], [now - 22, [{ seq: 2, ms: 0, text: 'old' }]], [now - 2, [{ seq: 3, ms: 0, text: 'recent' }]]]);
  const origin = fakeOrigin({ room: 'r', messages });
  /** @type {string[]} */
  const got = [];
  /** @type {any[]} */
  const skips = [];
  const feed = createFeed({ room: 'r', start: now - 50, maxCatchUpSeconds: 30, fetch: origin.fetch,
    onMessages: (ms) => got.push(...ms.map((m) => m.text)), onEvent: (e) => { if (e.type === 'skip') skips.push(e); } });
  await until(() => feed.state() === 'live');
  await feed.stop();
  assert.deepEqual(got, ['old', 'recent']);
  assert.equal(skips.length, 1);
  assert.equal(skips[0].from, now - 50);
  assert.ok(Math.abs(skips[0].to - (now - 30)) <= 1, `skipped to ${skips[0].to}, want about ${now - 30}`);
  const segs = origin.calls.filter((u) => u.includes('/segments/')).length;
  const buckets = origin.calls.filter((u) => u.includes('/buckets/')).length;
  assert.ok(segs >= 2, `${segs} segment requests`);
  assert.ok(buckets <= 12, `${buckets} bucket requests for a 30 s catch-up`);
});

test('feed: network errors back off, go offline, and recover', { timeout: 15000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const origin = fakeOrigin({ room: 'r', messages: new Map([[now + 1, [{ seq: 4, ms: 0, text: 'x' }]]]),
    fault: (_, n) => (n <= 5 ? 'network' : null) });
  /** @type {string[]} */
  const states = [];
  /** @type {string[]} */
  const got = [];
  const feed = createFeed({ room: 'r', start: now, retryMinMs: 20, retryMaxMs: 200, fetch: origin.fetch,
    onState: (s) => states.push(s), onMessages: (ms) => got.push(...ms.map((m) => m.text)) });
  await until(() => got.length === 1);
  await feed.stop();
  assert.equal(feed.stats().failures, 5);
  const off = states.indexOf('offline');
  assert.ok(off >= 0 && states.indexOf('live', off) > off, states.join(' → '));
});

test('feed: 403 without a JSON body for a sealed second is an empty second', { timeout: 15000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const origin = fakeOrigin({ room: 'r', messages: new Map([[now - 1, [{ seq: 8, ms: 0, text: 'after the hole' }]]]),
    fault: (url) => (url.endsWith(`/buckets/${now - 2}.json`) ? new Response('<Error>AccessDenied</Error>', { status: 403, headers: { 'content-type': 'application/xml' } }) : null) });
  /** @type {string[]} */
  const got = [];
  const feed = createFeed({ room: 'r', start: now - 2, fetch: origin.fetch, onMessages: (ms) => got.push(...ms.map((m) => m.text)) });
  await until(() => got.length === 1);
  await feed.stop();
  assert.deepEqual(got, ['after the hole']);
  assert.equal(feed.stats().failures, 0);
});

test('feed: an error retrying cannot fix stops the feed', { timeout: 5000 }, async () => {
  const origin = fakeOrigin({ room: 'r', messages: new Map(),
    fault: () => new Response(JSON.stringify({ code: 'bad_room', message: 'no' }), { status: 400, headers: { 'content-type': 'application/json' } }) });
  /** @type {any[]} */
  const errors = [];
  const feed = createFeed({ room: 'r', fetch: origin.fetch, onError: (e) => errors.push(e) });
  await until(() => feed.state() === 'stopped');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof DanmakuError && errors[0].code === 'bad_room' && errors[0].status === 400);
  assert.equal(origin.calls.length, 1);
});

test('feed: pauseWhenHidden waits while the page is hidden and reads on return', { timeout: 10000 }, async () => {
  const doc = Object.assign(new EventTarget(), { visibilityState: 'hidden' });
  /** @type {any} */ (globalThis).document = doc;
  try {
    const now = Math.floor(Date.now() / 1000);
    const origin = fakeOrigin({ room: 'r', messages: new Map([[now - 1, [{ seq: 1, ms: 0, text: 'while hidden' }]]]) });
    /** @type {string[]} */
    const got = [];
    const feed = createFeed({ room: 'r', start: now - 1, pauseWhenHidden: true, fetch: origin.fetch, onMessages: (ms) => got.push(...ms.map((m) => m.text)) });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(origin.calls.length, 0, 'requests while hidden');
    doc.visibilityState = 'visible';
    doc.dispatchEvent(new Event('visibilitychange'));
    await until(() => got.length === 1);
    await feed.stop();
    assert.deepEqual(got, ['while hidden']);
  } finally {
    delete (/** @type {any} */ (globalThis).document);
  }
});

test('replay emits messages at their offsets and follows seeks', { timeout: 5000 }, async () => {
  const start = 1_700_000_000; // the stream went live at this second; its segments:
  const messages = new Map([
    [start + 1, [{ seq: 1, ms: 0, text: 'at 1.0' }]],
    [start + 2, [{ seq: 2, ms: 500, text: 'at 2.5' }]],
    [start + 14, [{ seq: 3, ms: 0, text: 'at 14.0' }]],
  ]);
  const origin = fakeOrigin({ room: 'vod', messages });
  /** @type {[string, number][]} */
  const got = [];
  const replay = createReplay({ room: 'vod', streamStart: start, fetch: origin.fetch, onMessages: (ms) => got.push(...ms.map((m) => /** @type {[string, number]} */ ([m.text, m.at]))) });
  replay.seek(0);
  await until(() => origin.calls.length >= 2);
  await new Promise((r) => setTimeout(r, 50));
  replay.tick(0.9);
  assert.deepEqual(got, []);
  replay.tick(1.2);
  assert.deepEqual(got, [['at 1.0', 1]]);
  replay.tick(2.0);
  replay.tick(2.6);
  assert.deepEqual(got.map((g) => g[0]), ['at 1.0', 'at 2.5']);
  // Seek back: what is ahead of the new playhead comes again.
  replay.seek(0.5);
  replay.tick(1.1);
  assert.deepEqual(got.map((g) => g[0]), ['at 1.0', 'at 2.5', 'at 1.0']);
  // Seek forward past 2.5 and into the next segment: nothing in between.
  replay.seek(13.5);
  await until(() => origin.calls.some((u) => u.endsWith(`/segments/${start + 10}.json`)));
  await new Promise((r) => setTimeout(r, 50));
  replay.tick(14.2);
  assert.deepEqual(got.map((g) => g[0]), ['at 1.0', 'at 2.5', 'at 1.0', 'at 14.0']);
  replay.stop();
  assert.ok(origin.calls.every((u) => u.includes('/segments/')), 'replay reads segments only');
});

test('postMessage retries a 503 with the same Idempotency-Key and reports refusals', async () => {
  /** @type {string[]} */
  const keys = [];
  let n = 0;
  /** @type {typeof fetch} */
  const f = async (_url, init) => {
    keys.push(new Headers(init?.headers).get('idempotency-key') || '');
    assert.equal(JSON.parse(String(init?.body)).text, 'hi');
    if (n++ === 0) return new Response('busy', { status: 503 });
    return new Response(JSON.stringify({ id: '7', second: 123 }), { status: 202, headers: { 'content-type': 'application/json' } });
  };
  assert.deepEqual(await postMessage({ room: 'r', text: 'hi', fetch: f }), { id: '7', second: 123 });
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1]);
  assert.ok(keys[0].length >= 16);

  /** @type {typeof fetch} */
  const refuse = async () => new Response(JSON.stringify({ code: 'empty_text', message: 'text is empty' }), { status: 400, headers: { 'content-type': 'application/json' } });
  await assert.rejects(postMessage({ room: 'r', text: 'hi', fetch: refuse }), (/** @type {any} */ e) => e.code === 'empty_text' && e.status === 400 && /text is empty/.test(e.message));
});

test('postMessage sends a bearer token, asking a token function on every attempt', async () => {
  /** @type {(string|null)[]} */
  const auth = [];
  let n = 0;
  /** @type {typeof fetch} */
  const f = async (_url, init) => {
    auth.push(new Headers(init?.headers).get('authorization'));
    if (n++ === 0) return new Response('busy', { status: 503 });
    return new Response(JSON.stringify({ id: '8', second: 9 }), { status: 202 });
  };
  let calls = 0;
  const token = async () => 'tok' + ++calls;
  await postMessage({ room: 'r', text: 'hi', fetch: f, token });
  assert.deepEqual(auth, ['Bearer tok1', 'Bearer tok2']);
  auth.length = 0;
  n = 1;
  await postMessage({ room: 'r', text: 'hi', fetch: f, token: 'fixed' });
  await postMessage({ room: 'r', text: 'hi', fetch: f });
  assert.deepEqual(auth, ['Bearer fixed', null]);
});
