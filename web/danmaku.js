// danmaku.js: the player SDK for danmaku. A dependency-free ES module; no
// build step. It reads a room's live comments by short-polling second-aligned
// bucket URLs (each held by the origin until its second seals), catches up
// after a gap through 10-second segments, retries with full-jitter backoff,
// drops repeats by message id, replays a recorded stream against a video's
// playhead, posts, and draws comments flying across a stage.
//
//   import { createFeed, createStage } from '/danmaku.js';
//   const stage = createStage(document.querySelector('#video-box'));
//   const feed = createFeed({ base: 'https://cdn.example.com', room: 'lobby',
//     onMessages: (msgs) => stage.add(msgs), onState: (s) => console.log(s) });
//   // later: feed.stop();

/**
 * A comment as the SDK hands it out.
 * @typedef {object} Message
 * @property {string} id        stable and unique in the room: "<seq>" or "<seq>.<index>"
 * @property {number} second    unix second of the bucket holding it
 * @property {number} offsetMs  milliseconds into that second
 * @property {number} time      unix time in ms: second * 1000 + offsetMs
 * @property {string} text      plain text: insert it with textContent, never as HTML
 * @property {string} color     "#rrggbb"
 * @property {'scroll'|'top'|'bottom'} mode
 * @property {string} userId
 * @property {string} userName
 * @property {string} [avatar]  the poster's avatar URL, when the server looked one up
 * @property {string[]} [badges] the poster's badges
 * @property {number} [count]   more than 1: this many identical texts were folded into this one
 */

/**
 * A decoded bucket (seconds == 1) or segment (seconds == 10).
 * @typedef {object} Body
 * @property {string} room
 * @property {number} start
 * @property {number} seconds
 * @property {Message[]} messages
 * @property {number} dropped   messages a per-room cap left out
 */

/** @typedef {'connecting'|'live'|'catching-up'|'offline'|'stopped'} FeedState */

/**
 * One HTTP request the SDK made, for metrics.
 * @typedef {object} RequestEvent
 * @property {'request'} type
 * @property {'head'|'bucket'|'segment'|'post'} kind
 * @property {number} second    the bucket's second or the segment's start; 0 for head and post
 * @property {string} url
 * @property {number} status    0 when no answer came
 * @property {number} bytes     body bytes as sent (compressed, from Content-Length when known)
 * @property {number} ms        from sending to the end of the body
 */

/**
 * Seconds a catch-up gave up on because they were older than maxCatchUpSeconds.
 * @typedef {object} SkipEvent
 * @property {'skip'} type
 * @property {number} from  first second skipped
 * @property {number} to    first second read again
 * @property {number} seconds
 */

/**
 * @typedef {object} FeedStats
 * @property {number} requests
 * @property {number} heads
 * @property {number} buckets
 * @property {number} segments
 * @property {number} posts
 * @property {number} failures   network errors, timeouts, 5xx and 429 answers
 * @property {number} bytes      body bytes received, compressed as sent
 * @property {number} messages   messages handed out
 * @property {number} duplicates messages dropped because their id was already handed out
 * @property {number} skipped    seconds skipped past the catch-up cap
 */

/**
 * @typedef {object} BatchInfo
 * @property {'bucket'|'segment'} kind
 * @property {number} second   the bucket's second or the segment's start
 * @property {boolean} catchUp true when the seconds sealed a while ago
 */

/**
 * @typedef {object} PostOptions
 * @property {string} [color]    "#rrggbb" or "#rgb"
 * @property {'scroll'|'top'|'bottom'} [mode]
 * @property {string} [userId]   anonymous posting only: with a token the server takes the user from it
 * @property {string} [userName]
 * @property {string | (() => string | Promise<string>)} [token]  a bearer token (JWT) from your login, or a function that returns a fresh one; needed when the server runs with --auth-secret
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {object} Accepted
 * @property {string} id      the message's id, as it will appear in its bucket
 * @property {number} second  the second it will be sealed in
 */

/**
 * @typedef {object} FeedOptions
 * @property {string} [base]      URL of the origin or CDN; '' (default) for the page's own origin
 * @property {string} room        room id: 1-64 of A-Z a-z 0-9 _ -
 * @property {(messages: Message[], info: BatchInfo) => void} [onMessages] new messages, in order, each once
 * @property {(state: FeedState, previous: FeedState) => void} [onState]
 * @property {(event: RequestEvent|SkipEvent) => void} [onEvent] every request and every skip, for metrics
 * @property {(error: Error) => void} [onError] an error retrying cannot fix; the feed has stopped
 * @property {number} [start]     first second to read; default: the one after head's sealed second
 * @property {string} [ingest]    where post() sends; default: base
 * @property {number} [holdMs=3000]          how long the origin holds a request; requests time out after holdMs + 5000
 * @property {number} [catchUpAfterSeconds=3] more than this far behind the server's clock, catch up through segments
 * @property {number} [maxCatchUpSeconds=60] how far back a catch-up reaches; older seconds are skipped
 * @property {number} [retryMinMs=250]       full-jitter backoff: retry n waits up to min(retryMaxMs, retryMinMs * 2^n)
 * @property {number} [retryMaxMs=10000]
 * @property {number} [offlineAfter=3]       failures in a row before the state is 'offline'
 * @property {number} [dedupSize=10000]      message ids remembered to drop repeats
 * @property {boolean} [pauseWhenHidden=false] stop polling while the page is hidden (catch up on return)
 * @property {{id?: string, name?: string}} [user] defaults for post()
 * @property {string | (() => string | Promise<string>)} [token] the bearer token post() sends (see PostOptions)
 * @property {typeof fetch} [fetch]          for tests
 * @property {() => number} [now]            local clock in ms, for tests
 * @property {() => number} [random]         in [0, 1), for tests
 */

/**
 * @typedef {object} Feed
 * @property {() => FeedState} state
 * @property {() => FeedStats} stats
 * @property {() => number} serverNow   the server's clock as estimated, unix ms
 * @property {(text: string, opts?: PostOptions) => Promise<Accepted>} post
 * @property {() => Promise<void>} stop  stops polling; resolves once no request or timer is left
 */

export const SEGMENT_SECONDS = 10;

// An answer this prompt was not held: a second seals at least the writer's
// grace (100 ms) after its end, so the request was sent after it ended.
const PROMPT_ANSWER_MS = 100;
const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
const MODES = /** @type {const} */ (['scroll', 'top', 'bottom']);

/**
 * Formats 0xRRGGBB as "#rrggbb".
 * @param {number} n
 * @returns {string}
 */
export function colorToCss(n) {
  return '#' + ((n >>> 0) & 0xffffff).toString(16).padStart(6, '0');
}

/**
 * Decodes a bucket or segment body (already parsed from JSON), the columnar
 * layout README.md describes. Throws on a malformed body.
 * @param {any} w
 * @returns {Body}
 */
export function decodeBody(w) {
  const bad = (/** @type {string} */ why) => new Error('danmaku: malformed body: ' + why);
  if (!w || typeof w !== 'object' || w.v !== 1) throw bad('version');
  if (w.seconds !== 1 && w.seconds !== SEGMENT_SECONDS) throw bad('seconds');
  if (typeof w.room !== 'string' || !ROOM.test(w.room)) throw bad('room');
  if (!Number.isInteger(w.start) || w.start < 0) throw bad('start');
  const seq = w.seq || [], ms = w.ms || [], count = w.count, user = w.user;
  const users = w.users || [], text = w.text || [], color = w.color, mode = w.mode;
  const index = w.index, dup = w.dup, avatar = w.avatar, badges = w.badges;
  const dropped = w.dropped === undefined ? 0 : w.dropped;
  if (!Number.isInteger(dropped) || dropped < 0) throw bad('dropped');
  const n = seq.length;
  if (ms.length !== n || (count && count.length !== n) || (user && user.length !== n)) throw bad('column lengths');
  if ((avatar && avatar.length !== users.length) || (badges && badges.length !== users.length)) throw bad('user columns');
  let total = 0;
  for (let i = 0; i < n; i++) {
    const c = count ? count[i] : 1;
    if (!Number.isInteger(c) || c < 1) throw bad('count');
    total += c;
  }
  if (text.length !== total || (color && color.length !== total) || (mode && mode.length !== total) ||
      (index && index.length !== total) || (dup && dup.length !== total)) throw bad('message columns');
  /** @type {Message[]} */
  const messages = [];
  let s = 0, t = 0, k = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0 && !(seq[i] > 0)) throw bad('sequence order');
    s += seq[i];
    t += ms[i];
    if (!(s > 0) || !(t >= 0) || t >= w.seconds * 1000) throw bad('entry ' + i);
    const ui = user ? user[i] : 0;
    const u = users[ui];
    if (!Array.isArray(u)) throw bad('user');
    const c = count ? count[i] : 1;
    const second = w.start + Math.floor(t / 1000);
    let prev = -2;
    for (let j = 0; j < c; j++, k++) {
      const md = mode ? mode[k] : 0;
      if (!(md in MODES)) throw bad('mode');
      // Without an index column the id follows from the position; after a
      // redaction removed part of a batch, the column names it.
      let id = c === 1 ? String(s) : s + '.' + j;
      if (index) {
        const x = index[k];
        if (!Number.isInteger(x) || x < -1 || x <= prev || (x === -1 && c > 1)) throw bad('index');
        prev = x;
        id = x === -1 ? String(s) : s + '.' + x;
      }
      /** @type {Message} */
      const m = {
        id,
        second,
        offsetMs: t % 1000,
        time: w.start * 1000 + t,
        text: String(text[k]),
        color: colorToCss(color ? color[k] : 0xffffff),
        mode: MODES[md],
        userId: String(u[0] ?? ''),
        userName: String(u[1] ?? ''),
      };
      if (avatar && avatar[ui]) m.avatar = String(avatar[ui]);
      if (badges && Array.isArray(badges[ui]) && badges[ui].length) m.badges = badges[ui].map(String);
      if (dup) {
        if (!Number.isInteger(dup[k]) || dup[k] < 1) throw bad('dup');
        if (dup[k] > 1) m.count = dup[k];
      }
      messages.push(m);
    }
  }
  return { room: w.room, start: w.start, seconds: w.seconds, messages, dropped };
}

/**
 * What a feed does next.
 * @typedef {{kind: 'bucket', second: number, catchUp: boolean}
 *   | {kind: 'segment', second: number}
 *   | {kind: 'head'}
 *   | {kind: 'skip', from: number, to: number}} Step
 */

/**
 * Decides a feed's next request (pure). Near the server's clock: the bucket
 * of the next second, which the origin holds until it seals. Far behind:
 * refresh head if it is older than 2 s, skip what is older than the cap,
 * read each whole sealed 10-second window as one segment and the rest as
 * single buckets.
 * @param {{next: number, nowMs: number, sealed: number, headAgeMs: number,
 *   noSegIn?: number, catchUpAfter?: number, maxCatchUp?: number}} c
 * @returns {Step}
 */
export function planNext(c) {
  const now = Math.floor(c.nowMs / 1000);
  const catchUpAfter = c.catchUpAfter ?? 3, maxCatchUp = c.maxCatchUp ?? 60;
  if (now - c.next <= catchUpAfter) return { kind: 'bucket', second: c.next, catchUp: false };
  if (c.headAgeMs > 2000) return { kind: 'head' };
  const floor = now - maxCatchUp;
  if (c.next < floor) return { kind: 'skip', from: c.next, to: floor };
  const w = c.next - (((c.next % SEGMENT_SECONDS) + SEGMENT_SECONDS) % SEGMENT_SECONDS);
  const last = w + SEGMENT_SECONDS - 1;
  // One needed second is cheaper as its bucket than as a segment.
  if (last <= c.sealed && last - c.next >= 1 && w !== c.noSegIn) return { kind: 'segment', second: w };
  return { kind: 'bucket', second: c.next, catchUp: true };
}

/**
 * Full-jitter backoff: a uniform draw from [0, min(maxMs, minMs * 2^attempt)).
 * @param {number} attempt 0 for the first retry
 * @param {number} minMs
 * @param {number} maxMs
 * @param {number} r in [0, 1)
 * @returns {number}
 */
export function backoffDelay(attempt, minMs, maxMs, r) {
  return r * Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
}

/** Remembers the last `size` ids, to drop repeats. */
export class Dedup {
  /** @param {number} size */
  constructor(size) {
    /** @type {Set<string>} */
    this.seen = new Set();
    /** @type {string[]} */
    this.ring = [];
    this.pos = 0;
    this.size = Math.max(1, size | 0);
  }

  /**
   * Remembers id; reports whether it is new.
   * @param {string} id
   * @returns {boolean}
   */
  add(id) {
    if (this.seen.has(id)) return false;
    if (this.ring.length < this.size) {
      this.ring.push(id);
    } else {
      this.seen.delete(this.ring[this.pos]);
      this.ring[this.pos] = id;
      this.pos = (this.pos + 1) % this.size;
    }
    this.seen.add(id);
    return true;
  }
}

/** An error that retrying cannot fix, or a refused post. */
export class DanmakuError extends Error {
  /**
   * @param {string} message
   * @param {number} status HTTP status, 0 if none
   * @param {string} code   the JSON error code, '' if none
   */
  constructor(message, status, code) {
    super(message);
    this.name = 'DanmakuError';
    this.status = status;
    this.code = code;
  }
}

/**
 * @typedef {object} Answer
 * @property {number} status
 * @property {string} text
 * @property {string} code        the code of a JSON error body, '' if not one
 * @property {number} retryAfterMs
 */

/**
 * Makes one request with a timeout and reports it.
 * @param {typeof fetch} fetchImpl
 * @param {string} url
 * @param {RequestInit} init
 * @param {number} timeoutMs
 * @param {AbortSignal | undefined} outer aborts the request too
 * @param {(ev: RequestEvent) => void} report
 * @param {RequestEvent['kind']} kind
 * @param {number} second
 * @returns {Promise<Answer>} rejects on network errors, timeouts and aborts
 */
async function request(fetchImpl, url, init, timeoutMs, outer, report, kind, second) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  const timer = setTimeout(abort, timeoutMs);
  outer?.addEventListener('abort', abort);
  const t0 = performanceNow();
  /** @type {RequestEvent} */
  const ev = { type: 'request', kind, second, url, status: 0, bytes: 0, ms: 0 };
  try {
    const res = await fetchImpl(url, { ...init, signal: ctl.signal, credentials: 'omit' });
    const text = await res.text();
    ev.status = res.status;
    ev.bytes = Number(res.headers.get('content-length')) || text.length;
    let code = '';
    if (res.status >= 400 && (res.headers.get('content-type') || '').includes('application/json')) {
      try {
        code = String(JSON.parse(text).code || '');
      } catch {
        // not a JSON error body
      }
    }
    const ra = Number(res.headers.get('retry-after'));
    return { status: res.status, text, code, retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : 0 };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', abort);
    ev.ms = performanceNow() - t0;
    report(ev);
  }
}

function performanceNow() {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

function trimBase(/** @type {string|undefined} */ base) {
  return (base ?? '').replace(/\/+$/, '');
}

/**
 * Posts one message. Transient failures (network, 5xx, 429) are retried up
 * to three times with one Idempotency-Key, so a retry never posts twice.
 * @param {{base?: string, room: string, text: string, fetch?: typeof fetch} & PostOptions} opts
 * @param {(ev: RequestEvent) => void} [report]
 * @returns {Promise<Accepted>} rejects with a DanmakuError when refused
 */
export async function postMessage(opts, report = () => {}) {
  if (!ROOM.test(opts.room)) throw new DanmakuError('danmaku: bad room id', 0, 'bad_room');
  const fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const url = trimBase(opts.base) + '/v1/rooms/' + opts.room + '/messages';
  /** @type {Record<string, string>} */
  const msg = { text: opts.text };
  if (opts.color) msg.color = opts.color;
  if (opts.mode) msg.mode = opts.mode;
  if (opts.userId) msg.user_id = opts.userId;
  if (opts.userName) msg.user_name = opts.userName;
  const body = JSON.stringify(msg);
  const key = randomKey();
  for (let attempt = 0; ; attempt++) {
    let a;
    try {
      // text/plain keeps the request simple for CORS; the body is JSON.
      /** @type {Record<string, string>} */
      const headers = { 'Content-Type': 'text/plain;charset=UTF-8', 'Idempotency-Key': key };
      const token = typeof opts.token === 'function' ? await opts.token() : opts.token;
      if (token) headers.Authorization = 'Bearer ' + token;
      a = await request(fetchImpl, url, { method: 'POST', headers, body }, 10000, opts.signal, report, 'post', 0);
    } catch (err) {
      if (opts.signal?.aborted || attempt === 3) throw err;
      await delay(backoffDelay(attempt, 250, 4000, Math.random()));
      continue;
    }
    if (a.status === 202) {
      const j = JSON.parse(a.text);
      return { id: String(j.id), second: Number(j.second) };
    }
    if ((a.status === 429 || a.status >= 500) && attempt < 3) {
      await delay(Math.max(backoffDelay(attempt, 250, 4000, Math.random()), Math.min(a.retryAfterMs, 4000)));
      continue;
    }
    let message = a.text.slice(0, 200);
    try {
      message = JSON.parse(a.text).message || message;
    } catch {
      // keep the raw text
    }
    throw new DanmakuError('danmaku: post: ' + message, a.status, a.code);
  }
}

function delay(/** @type {number} */ ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function randomKey() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Starts reading a room's live comments.
 * @param {FeedOptions} options
 * @returns {Feed}
 */
export function createFeed(options) {
  const o = {
    base: '', holdMs: 3000, catchUpAfterSeconds: 3, maxCatchUpSeconds: 60, retryMinMs: 250,
    retryMaxMs: 10000, offlineAfter: 3, dedupSize: 10000, pauseWhenHidden: false, ...options,
  };
  if (!ROOM.test(o.room)) throw new DanmakuError('danmaku: room must be 1-64 of A-Z a-z 0-9 _ -', 0, 'bad_room');
  if (!(o.catchUpAfterSeconds >= 1) || !(o.maxCatchUpSeconds >= o.catchUpAfterSeconds) || !(o.retryMinMs > 0) ||
      !(o.retryMaxMs >= o.retryMinMs) || !(o.offlineAfter >= 1)) {
    throw new DanmakuError('danmaku: bad feed options', 0, 'bad_options');
  }
  const base = trimBase(o.base);
  const roomPath = base + '/v1/rooms/' + o.room;
  const fetchImpl = o.fetch ?? globalThis.fetch.bind(globalThis);
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;

  /** @type {FeedState} */
  let state = 'connecting';
  let stopped = false;
  let next = o.start || 0; // first second not handed out yet (0 until head)
  let offsetMs = 0; // server clock minus local clock
  let sealed = 0; // newest second known sealed
  let headAt = -Infinity; // local time of the last head
  let needHead = true;
  let pollMs = 1000;
  let lastPoll = -Infinity;
  let failures = 0;
  let badBodies = 0;
  let noSegIn = -1;
  const seen = new Dedup(o.dedupSize);
  /** @type {FeedStats} */
  const stats = { requests: 0, heads: 0, buckets: 0, segments: 0, posts: 0, failures: 0, bytes: 0, messages: 0, duplicates: 0, skipped: 0 };
  const stopCtl = new AbortController();
  /** @type {null | (() => void)} */
  let wake = null;

  const setState = (/** @type {FeedState} */ s) => {
    if (s === state) return;
    const prev = state;
    state = s;
    safe(() => o.onState?.(s, prev));
  };
  const report = (/** @type {RequestEvent} */ ev) => {
    stats.requests++;
    stats[ev.kind === 'head' ? 'heads' : ev.kind === 'post' ? 'posts' : ev.kind === 'segment' ? 'segments' : 'buckets']++;
    stats.bytes += ev.bytes;
    safe(() => o.onEvent?.(ev));
  };
  const serverNow = () => now() + offsetMs;

  /** Sleeps ms, or less if woken (online again, page visible, stop). */
  const sleep = (/** @type {number} */ ms) => new Promise((resolve) => {
    if (stopped || ms <= 0) return resolve(undefined);
    const done = () => {
      clearTimeout(t);
      if (wake === done) wake = null;
      resolve(undefined);
    };
    const t = setTimeout(done, ms);
    wake = done;
  });

  /** @type {null | (() => void)} */
  let resumeVisible = null;
  const hidden = () => typeof document !== 'undefined' && document.visibilityState === 'hidden';
  const onWake = () => {
    if (resumeVisible && !hidden()) resumeVisible();
    wake?.();
  };
  const win = typeof window !== 'undefined' && typeof window.addEventListener === 'function' ? window : null;
  win?.addEventListener('online', onWake);
  if (typeof document !== 'undefined') document.addEventListener?.('visibilitychange', onWake);

  /**
   * @typedef {undefined | {pause: number} | {retry: true, retryAfterMs: number} | {fatal: Error}} Outcome
   */

  /** @returns {Promise<Outcome>} */
  async function syncHead() {
    const sent = now();
    let a;
    try {
      a = await request(fetchImpl, roomPath + '/head', {}, 10000, stopCtl.signal, report, 'head', 0);
    } catch {
      return { retry: true, retryAfterMs: 0 };
    }
    const got = now();
    if (a.status !== 200) return failure(a, 'head');
    let h;
    try {
      h = JSON.parse(a.text);
    } catch {
      return { retry: true, retryAfterMs: 0 };
    }
    if (!(h.now_ms > 0) || !(h.sealed >= 0)) return { retry: true, retryAfterMs: 0 };
    // The server read its clock about halfway through the round trip.
    offsetMs = h.now_ms - (sent + got) / 2;
    sealed = Math.max(sealed, h.sealed);
    headAt = got;
    needHead = false;
    pollMs = Math.max(100, Number(h.poll_ms) || 1000);
    if (!next) next = h.sealed + 1;
    return undefined;
  }

  /**
   * @param {Answer} a
   * @param {string} what
   * @returns {Outcome}
   */
  function failure(a, what) {
    if (a.status === 429 || a.status >= 500 || a.status < 200 || (a.status >= 300 && a.status < 400)) {
      return { retry: true, retryAfterMs: a.retryAfterMs };
    }
    return { fatal: new DanmakuError(`danmaku: ${what}: ${a.status} ${a.text.slice(0, 200)}`, a.status, a.code) };
  }

  /**
   * Reads the bucket or segment at second and hands out what is new.
   * @param {'bucket'|'segment'} kind
   * @param {number} second
   * @param {boolean} catchUp
   * @returns {Promise<Outcome>}
   */
  async function readObject(kind, second, catchUp) {
    const url = `${roomPath}/${kind}s/${second}.json`;
    const seconds = kind === 'segment' ? SEGMENT_SECONDS : 1;
    const last = second + seconds - 1;
    let a;
    const sentAt = now();
    try {
      a = await request(fetchImpl, url, {}, kind === 'bucket' ? o.holdMs + 5000 : 10000, stopCtl.signal, report, kind, second);
    } catch {
      return { retry: true, retryAfterMs: 0 };
    }
    if (a.status === 404 && a.code === 'not_sealed') {
      if (kind === 'segment') {
        noSegIn = second; // read this window by buckets
        return undefined;
      }
      return { pause: 200 + random() * 300 };
    }
    if (a.status === 404 && a.code === 'future') {
      needHead = true; // this clock runs ahead of the server's
      return { pause: 500 };
    }
    if ((a.status === 404 || a.status === 403) && !a.code) {
      // A store answering for the origin (a CDN's failover) has no object
      // for an empty second: empty if known sealed, else ask head.
      if (last > sealed) {
        needHead = true;
        return { pause: 250 };
      }
      advance(last, catchUp);
      return undefined;
    }
    if (a.status !== 200) return failure(a, `${kind} ${second}`);
    let body;
    try {
      body = decodeBody(JSON.parse(a.text));
      if (body.room !== o.room || body.start !== second || body.seconds !== seconds) throw new Error('wrong object');
    } catch (err) {
      if (++badBodies >= 3) { // an immutable object will not mend: go on without it
        skip(next, last + 1);
        advance(last, catchUp);
        return undefined;
      }
      return { retry: true, retryAfterMs: 0 };
    }
    /** @type {Message[]} */
    const fresh = [];
    for (const m of body.messages) {
      if (m.second < next) continue; // a segment's seconds before the next to read
      if (!seen.add(m.id)) {
        stats.duplicates++;
        continue;
      }
      fresh.push(m);
    }
    stats.messages += fresh.length;
    if (kind === 'bucket' && !catchUp) {
      // A 200 means the server's clock passed the end of the second. One
      // that came back at once was not held: the second had sealed before
      // we asked, so this clock runs behind the server's (as after a head
      // that a cache kept for a while). Then the clock is set by when we
      // asked, and the next second is asked for at once rather than a poll
      // interval after this request, which would keep every later one late.
      let at = now();
      if (at - sentAt < PROMPT_ANSWER_MS) {
        at = sentAt;
        lastPoll = -Infinity;
      }
      const lag = (second + 1) * 1000 - (at + offsetMs);
      if (lag > 0) offsetMs += lag;
    }
    advance(last, catchUp);
    if (fresh.length) safe(() => o.onMessages?.(fresh, { kind, second, catchUp }));
    return undefined;
  }

  function advance(/** @type {number} */ last, /** @type {boolean} */ catchUp) {
    next = last + 1;
    sealed = Math.max(sealed, last);
    failures = 0;
    badBodies = 0;
    if (!catchUp) setState('live');
  }

  function skip(/** @type {number} */ from, /** @type {number} */ to) {
    stats.skipped += to - from;
    safe(() => o.onEvent?.({ type: 'skip', from, to, seconds: to - from }));
  }

  /** @returns {Promise<Outcome>} */
  async function step() {
    if (needHead || headAt < 0) return syncHead();
    const p = planNext({
      next, nowMs: serverNow(), sealed, headAgeMs: now() - headAt, noSegIn,
      catchUpAfter: o.catchUpAfterSeconds, maxCatchUp: o.maxCatchUpSeconds,
    });
    switch (p.kind) {
      case 'head':
        return syncHead();
      case 'skip':
        skip(p.from, p.to);
        next = p.to;
        return undefined;
      case 'segment':
        setState('catching-up');
        return readObject('segment', p.second, true);
    }
    if (p.catchUp) {
      setState('catching-up');
    } else if (failures === 0 && serverNow() < (p.second + 1) * 1000) {
      // A request the origin will hold: keep the server's poll interval
      // between two of them (retries keep to their backoff instead).
      await sleep(pollMs - (now() - lastPoll));
      if (stopped) return undefined;
      lastPoll = now();
    }
    return readObject('bucket', p.second, p.catchUp);
  }

  const done = (async () => {
    while (!stopped) {
      if (o.pauseWhenHidden && hidden()) {
        await new Promise((resolve) => { resumeVisible = () => { resumeVisible = null; resolve(undefined); }; });
        continue;
      }
      /** @type {Outcome} */
      let r;
      try {
        r = await step();
      } catch (err) {
        console.error('danmaku: feed step failed', err);
        r = { retry: true, retryAfterMs: 0 };
      }
      if (stopped || !r) continue;
      if ('fatal' in r) {
        safe(() => o.onError?.(r.fatal));
        finish();
        break;
      }
      if ('pause' in r) {
        await sleep(r.pause);
        continue;
      }
      failures++;
      stats.failures++;
      if (failures >= o.offlineAfter) setState('offline');
      const d = Math.max(backoffDelay(failures - 1, o.retryMinMs, o.retryMaxMs, random()), Math.min(r.retryAfterMs, o.retryMaxMs));
      await sleep(d);
    }
  })();

  function finish() {
    stopped = true;
    stopCtl.abort();
    wake?.();
    resumeVisible?.();
    win?.removeEventListener('online', onWake);
    if (typeof document !== 'undefined') document.removeEventListener?.('visibilitychange', onWake);
    setState('stopped');
  }

  return {
    state: () => state,
    stats: () => ({ ...stats }),
    serverNow,
    post(text, opts = {}) {
      return postMessage({
        base: o.ingest ?? o.base, room: o.room, text, fetch: o.fetch,
        userId: o.user?.id, userName: o.user?.name, token: o.token, ...opts,
      }, report);
    },
    async stop() {
      if (!stopped) finish();
      await done;
    },
  };
}

function safe(/** @type {() => void} */ f) {
  try {
    f();
  } catch (err) {
    console.error('danmaku: callback failed', err);
  }
}

/* ------------------------------------------------------------------ */
/* Replay                                                             */
/* ------------------------------------------------------------------ */

/**
 * @typedef {Message & {at: number}} ReplayMessage  `at`: seconds into the video
 */

/**
 * @typedef {object} ReplayOptions
 * @property {string} [base]   URL of the origin or CDN; '' for the page's own origin
 * @property {string} room
 * @property {number|Date} streamStart when the video's time 0 was live: a Date, unix ms, or unix seconds
 * @property {HTMLMediaElement} [media] followed automatically (play, seeks) when given; otherwise call tick()
 * @property {(messages: ReplayMessage[]) => void} [onMessages] messages whose moment the playhead just passed
 * @property {(event: RequestEvent) => void} [onEvent]
 * @property {number} [lookaheadSeconds=15] how far past the playhead segments are loaded
 * @property {number} [lateMs=2000] messages more than this far behind the playhead when their segment arrives are dropped
 * @property {typeof fetch} [fetch]
 */

/**
 * @typedef {object} Replay
 * @property {(currentTime: number) => void} tick  the playhead moved to currentTime (seconds)
 * @property {(currentTime: number) => void} seek  the playhead jumped: nothing before it is emitted
 * @property {() => void} stop
 */

/**
 * Picks the messages with time in (fromMs, toMs] from a list sorted by time (pure).
 * @param {Message[]} sorted
 * @param {number} fromMs
 * @param {number} toMs
 * @returns {Message[]}
 */
export function dueMessages(sorted, fromMs, toMs) {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid].time <= fromMs) lo = mid + 1;
    else hi = mid;
  }
  const out = [];
  for (let i = lo; i < sorted.length && sorted[i].time <= toMs; i++) out.push(sorted[i]);
  return out;
}

/**
 * Replays a recorded room against a video's playhead: it loads the
 * segments around the playhead and emits each message when the playhead
 * passes its moment, following seeks.
 * @param {ReplayOptions} options
 * @returns {Replay}
 */
export function createReplay(options) {
  const o = { base: '', lookaheadSeconds: 15, lateMs: 2000, ...options };
  if (!ROOM.test(o.room)) throw new DanmakuError('danmaku: bad room id', 0, 'bad_room');
  const ss = o.streamStart instanceof Date ? o.streamStart.getTime() : Number(o.streamStart);
  const startMs = ss < 1e11 ? ss * 1000 : ss;
  const fetchImpl = o.fetch ?? globalThis.fetch.bind(globalThis);
  const roomPath = trimBase(o.base) + '/v1/rooms/' + o.room;
  const ctl = new AbortController();
  /** @typedef {{status: 'loading'|'ready'|'wait', messages: Message[], retryAt: number, tries: number}} Window */
  /** @type {Map<number, Window>} */
  const windows = new Map();
  let cursorMs = NaN; // everything at or before it was emitted (or skipped)
  let lastT = NaN;
  let stopped = false;
  const report = (/** @type {RequestEvent} */ ev) => safe(() => o.onEvent?.(ev));

  const windowOf = (/** @type {number} */ ms) => {
    const s = Math.floor(ms / 1000);
    return s - (((s % SEGMENT_SECONDS) + SEGMENT_SECONDS) % SEGMENT_SECONDS);
  };

  async function load(/** @type {number} */ start) {
    const w = windows.get(start) ?? { status: 'loading', messages: [], retryAt: 0, tries: 0 };
    w.status = 'loading';
    windows.set(start, w);
    let retryMs = 0;
    try {
      const a = await request(fetchImpl, `${roomPath}/segments/${start}.json`, {}, 10000, ctl.signal, report, 'segment', start);
      if (a.status === 200) {
        w.messages = decodeBody(JSON.parse(a.text)).messages;
        w.status = 'ready';
      } else if (a.status === 404 && (a.code === 'not_sealed' || a.code === 'future')) {
        retryMs = 2000; // at the live edge: sealed soon
      } else if ((a.status === 404 || a.status === 403) && !a.code) {
        w.status = 'ready'; // no object in a store: an empty window
      } else if (a.status >= 500 || a.status === 429) {
        retryMs = backoffDelay(w.tries++, 500, 10000, Math.random()) + 250;
      } else {
        w.status = 'ready'; // refused for good: nothing to show
      }
    } catch {
      retryMs = backoffDelay(w.tries++, 500, 10000, Math.random()) + 250;
    }
    if (retryMs) {
      w.status = 'wait';
      w.retryAt = Date.now() + retryMs;
    }
    if (!stopped && Number.isFinite(lastT)) tick(lastT);
  }

  /** @param {number} t */
  function seek(t) {
    lastT = t;
    cursorMs = startMs + t * 1000;
    tick(t);
  }

  /** @param {number} t */
  function tick(t) {
    if (stopped || !Number.isFinite(t)) return;
    const nowMs = startMs + t * 1000;
    if (!Number.isFinite(cursorMs) || t < lastT - 0.25 || t - lastT > 3) cursorMs = nowMs; // a seek
    lastT = t;
    // Load the windows around the playhead; forget far ones.
    const want = new Set();
    for (let w = windowOf(nowMs - 1000); w <= windowOf(nowMs + o.lookaheadSeconds * 1000); w += SEGMENT_SECONDS) {
      want.add(w);
      const win = windows.get(w);
      if (!win || (win.status === 'wait' && Date.now() >= win.retryAt)) load(w);
    }
    for (const w of windows.keys()) {
      if (!want.has(w) && (w + SEGMENT_SECONDS) * 1000 < nowMs - 60000) windows.delete(w);
      if (!want.has(w) && w * 1000 > nowMs + 120000) windows.delete(w);
    }
    // Emit what the playhead passed, as far as the loaded windows reach.
    /** @type {ReplayMessage[]} */
    const out = [];
    while (cursorMs < nowMs) {
      const w = windowOf(cursorMs + 1);
      const win = windows.get(w);
      const end = Math.min(nowMs, (w + SEGMENT_SECONDS) * 1000 - 1);
      if (!win || win.status !== 'ready') {
        // Not here yet: wait, but do not fall further behind than lateMs.
        cursorMs = Math.max(cursorMs, nowMs - o.lateMs);
        break;
      }
      for (const m of dueMessages(win.messages, cursorMs, end)) out.push({ ...m, at: (m.time - startMs) / 1000 });
      cursorMs = end;
    }
    if (out.length) safe(() => o.onMessages?.(out));
  }

  const media = o.media;
  let raf = 0;
  const frame = () => {
    raf = 0;
    if (stopped || !media) return;
    tick(media.currentTime);
    if (!media.paused) raf = requestAnimationFrame(frame);
  };
  const onPlay = () => { if (!raf) raf = requestAnimationFrame(frame); };
  const onSeek = () => media && seek(media.currentTime);
  const onTime = () => media && tick(media.currentTime);
  if (media) {
    media.addEventListener('play', onPlay);
    media.addEventListener('seeking', onSeek);
    media.addEventListener('timeupdate', onTime);
    seek(media.currentTime);
    if (!media.paused) onPlay();
  }

  return {
    tick,
    seek,
    stop() {
      stopped = true;
      ctl.abort();
      if (raf) cancelAnimationFrame(raf);
      if (media) {
        media.removeEventListener('play', onPlay);
        media.removeEventListener('seeking', onSeek);
        media.removeEventListener('timeupdate', onTime);
      }
    },
  };
}

/* ------------------------------------------------------------------ */
/* Stage: comments flying across a video                              */
/* ------------------------------------------------------------------ */

/**
 * A stage row: when a scrolling comment may enter it, and when it is empty.
 * @typedef {object} Row
 * @property {number} enterAt  a scrolling comment may enter from then on
 * @property {number} clearAt  no comment is in the row from then on
 */

/**
 * Picks a row for a new comment (pure), or -1 if none is free. A scrolling
 * comment takes the first row it can enter; a top comment the first empty
 * row of the upper third, a bottom one the last empty row of the lower
 * third, so pinned comments never cover scrolling ones and never crowd
 * them out.
 * @param {Row[]} rows
 * @param {'scroll'|'top'|'bottom'} mode
 * @param {number} nowMs
 * @returns {number}
 */
export function pickRow(rows, mode, nowMs) {
  const n = rows.length;
  if (mode === 'top' || mode === 'bottom') {
    const k = Math.max(1, Math.floor(n / 3));
    for (let j = 0; j < k && j < n; j++) {
      const i = mode === 'top' ? j : n - 1 - j;
      if (rows[i].clearAt <= nowMs) return i;
    }
    return -1;
  }
  for (let i = 0; i < n; i++) if (rows[i].enterAt <= nowMs) return i;
  return -1;
}

/**
 * When a scrolling comment of width w leaves room behind it for the next
 * one in its lane: once its tail is gapPx past the stage's right edge.
 * Every comment moves at the same speed, so none catches up with the one
 * ahead.
 * @param {number} startMs when it entered
 * @param {number} widthPx its width
 * @param {number} gapPx
 * @param {number} pxPerMs speed
 * @returns {number}
 */
export function scrollLaneFreeAt(startMs, widthPx, gapPx, pxPerMs) {
  return startMs + (widthPx + gapPx) / pxPerMs;
}

/**
 * @typedef {object} StageOptions
 * @property {number} [laneHeight=34]  px per lane
 * @property {number} [crossMs=8000]   time a scrolling comment takes to cross the stage's width
 * @property {number} [fixedMs=4000]   time a top or bottom comment stays
 * @property {number} [gapPx=32]       least space between two comments in a lane
 * @property {number} [maxQueue=300]   comments waiting for a row; past it the oldest are dropped
 * @property {(m: Message, el: HTMLElement) => void} [onShow] a comment went on stage
 */

/**
 * @typedef {object} Stage
 * @property {(messages: Message[]) => void} add
 * @property {() => {shown: number, dropped: number, queued: number, flying: number}} stats
 * @property {() => void} clear
 * @property {() => void} stop
 */

/**
 * Draws comments flying across el (a box over or standing in for the
 * video): scrolling ones right to left in lanes without overlap, top and
 * bottom ones pinned, with CSS transforms moved by requestAnimationFrame.
 * Text goes in with textContent: never parsed as HTML.
 * @param {HTMLElement} el
 * @param {StageOptions} [options]
 * @returns {Stage}
 */
export function createStage(el, options = {}) {
  const o = { laneHeight: 34, crossMs: 8000, fixedMs: 4000, gapPx: 32, maxQueue: 300, ...options };
  /** @type {Message[]} */
  const queue = [];
  /** @type {{m: Message, node: HTMLElement, start: number, width: number}[]} */
  let flying = [];
  /** @type {Row[]} */
  let rows = [];
  let shown = 0, dropped = 0, raf = 0, stopped = false;
  let width = 0, height = 0;

  const layout = () => {
    width = el.clientWidth;
    height = el.clientHeight;
    const n = Math.max(1, Math.floor(height / o.laneHeight));
    rows = Array.from({ length: n }, (_, i) => rows[i] ?? { enterAt: 0, clearAt: 0 });
  };

  /** Puts queued comments on stage, in order within each mode. */
  const place = (/** @type {number} */ now) => {
    const speed = width / o.crossMs;
    /** @type {Set<string>} */
    const full = new Set();
    /** @type {Message[]} */
    const waiting = [];
    for (const m of queue) {
      const row = full.has(m.mode) ? -1 : pickRow(rows, m.mode, now);
      if (row < 0) {
        full.add(m.mode);
        waiting.push(m);
        continue;
      }
      const node = document.createElement('div');
      node.className = 'dm-item dm-' + m.mode;
      node.textContent = m.text;
      node.style.color = m.color;
      node.dataset.id = m.id;
      node.style.top = row * o.laneHeight + 'px';
      node.style.transform = `translate3d(${width}px,0,0)`;
      el.appendChild(node);
      const w = node.offsetWidth;
      const r = rows[row];
      if (m.mode === 'scroll') {
        r.enterAt = scrollLaneFreeAt(now, w, o.gapPx, speed);
        r.clearAt = Math.max(r.clearAt, now + (width + w) / speed);
      } else {
        r.enterAt = r.clearAt = now + o.fixedMs;
        node.style.transform = `translate3d(${Math.max(0, (width - w) / 2)}px,0,0)`;
      }
      flying.push({ m, node, start: now, width: w });
      shown++;
      safe(() => o.onShow?.(m, node));
    }
    queue.length = 0;
    queue.push(...waiting);
  };

  const frame = (/** @type {number} */ now) => {
    raf = 0;
    if (stopped) return;
    if (el.clientWidth !== width || el.clientHeight !== height) layout();
    place(now);
    const speed = width / o.crossMs;
    flying = flying.filter((f) => {
      if (f.m.mode === 'scroll') {
        const x = width - (now - f.start) * speed;
        if (x < -f.width) {
          f.node.remove();
          return false;
        }
        f.node.style.transform = `translate3d(${x.toFixed(1)}px,0,0)`;
        return true;
      }
      if (now - f.start > o.fixedMs) {
        f.node.remove();
        return false;
      }
      return true;
    });
    if (flying.length || queue.length) raf = requestAnimationFrame(frame);
  };

  layout();
  return {
    add(messages) {
      if (stopped) return;
      for (const m of messages) queue.push(m);
      if (queue.length > o.maxQueue) dropped += queue.splice(0, queue.length - o.maxQueue).length;
      if (!raf) raf = requestAnimationFrame(frame);
    },
    stats: () => ({ shown, dropped, queued: queue.length, flying: flying.length }),
    clear() {
      for (const f of flying) f.node.remove();
      flying = [];
      queue.length = 0;
      rows = [];
      layout();
    },
    stop() {
      stopped = true;
      if (raf) cancelAnimationFrame(raf);
      raf = 0;
      for (const f of flying) f.node.remove();
      flying = [];
    },
  };
}
