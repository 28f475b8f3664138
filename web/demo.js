// The demo page: a stage standing in for the video, a post box and a live
// panel, all on top of danmaku.js. User text only ever goes in through
// textContent.
import { createFeed, createStage } from '/danmaku.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);
const room = /^[A-Za-z0-9_-]{1,64}$/.test(params.get('room') || '') ? /** @type {string} */ (params.get('room')) : 'lobby';
$('room').textContent = room;

let userId = sessionStorage.getItem('danmaku-user');
if (!userId) {
  userId = 'web-' + Math.random().toString(36).slice(2, 8);
  sessionStorage.setItem('danmaku-user', userId);
}

/**
 * What tests (and curious people in the console) can read.
 * received/shown: message id → times handed out by the feed / put on stage.
 */
const hook = {
  room,
  /** @type {Record<string, number>} */ received: {},
  /** @type {Record<string, number>} */ shown: {},
  /** @type {Record<string, number>} */ shownAt: {},
  /** @type {{id: string, second: number, text: string, sentAt: number}[]} */ posted: [],
  /** @type {string[]} */ states: [],
  /** @type {number[]} */ latencies: [],
  /** @type {any} */ feed: null,
  /** @type {any} */ stage: null,
};
/** @type {any} */ (window).__danmaku = hook;

/** @type {Map<string, number>} id → when its POST was sent */
const sentAt = new Map();
/** @type {number[]} */
const requestTimes = [];

const stage = createStage($('stage'), {
  onShow(m, el) {
    hook.shown[m.id] = (hook.shown[m.id] || 0) + 1;
    hook.shownAt[m.id] = Date.now();
    const t = sentAt.get(m.id);
    if (t !== undefined) {
      el.classList.add('mine');
      const ms = Date.now() - t;
      hook.latencies.push(ms);
      const sorted = [...hook.latencies].sort((a, b) => a - b);
      $('latency').textContent = `${ms} ms (p50 ${sorted[Math.floor((sorted.length - 1) / 2)]})`;
      sentAt.delete(m.id);
    }
  },
});
hook.stage = stage;

const log = $('log');
const feed = createFeed({
  room,
  user: { id: userId, name: userId },
  onMessages(messages) {
    for (const m of messages) {
      hook.received[m.id] = (hook.received[m.id] || 0) + 1;
      const li = document.createElement('li');
      li.dataset.id = m.id;
      li.textContent = m.text;
      log.appendChild(li);
    }
    while (log.childElementCount > 2000) log.firstElementChild?.remove();
    stage.add(messages);
  },
  onState(state) {
    hook.states.push(state);
    $('state').textContent = state;
    $('state').dataset.state = state;
  },
  onEvent(ev) {
    if (ev.type === 'request') requestTimes.push(Date.now());
  },
});
hook.feed = feed;

const fmtBytes = (/** @type {number} */ n) => n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(2)} MiB`;
setInterval(() => {
  const s = feed.stats();
  const cutoff = Date.now() - 60000;
  while (requestTimes.length && requestTimes[0] < cutoff) requestTimes.shift();
  $('bytes').textContent = fmtBytes(s.bytes);
  $('rpm').textContent = String(requestTimes.length);
  $('count').textContent = String(s.messages);
  $('skipped').textContent = `${s.skipped} s`;
  $('flying').textContent = String(stage.stats().flying);
}, 500);

// Colour swatches and the custom picker share one value.
const colorInput = /** @type {HTMLInputElement} */ ($('color'));
const swatches = $('swatches');
for (const c of ['#ffffff', '#fe0302', '#ffd302', '#00cd00', '#4266be', '#cc0273']) {
  const b = document.createElement('button');
  b.type = 'button';
  b.style.background = c;
  b.title = c;
  b.setAttribute('aria-label', c);
  b.setAttribute('aria-pressed', String(c === '#ffffff'));
  b.addEventListener('click', () => {
    colorInput.value = c;
    for (const o of swatches.children) o.setAttribute('aria-pressed', String(o === b));
  });
  swatches.appendChild(b);
}
colorInput.addEventListener('input', () => {
  for (const o of swatches.children) o.setAttribute('aria-pressed', 'false');
});

const form = /** @type {HTMLFormElement} */ ($('post'));
const textInput = /** @type {HTMLInputElement} */ ($('text'));
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = textInput.value.trim();
  if (!text) return;
  const mode = /** @type {'scroll'|'top'|'bottom'} */ (/** @type {HTMLSelectElement} */ ($('mode')).value);
  $('error').textContent = '';
  const t0 = Date.now();
  try {
    const a = await feed.post(text, { color: colorInput.value, mode });
    if (!hook.shown[a.id]) sentAt.set(a.id, t0);
    hook.posted.push({ id: a.id, second: a.second, text, sentAt: t0 });
    textInput.value = '';
  } catch (err) {
    $('error').textContent = String(/** @type {Error} */ (err).message || err);
  }
});
