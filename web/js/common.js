// What every part of the page shares: the page's elements, window.gpunn, formatting, the
// status line, the busy state and the queue that keeps calls into a Session one at a time.

export const $ = (id) => document.getElementById(id);

export const el = {
  status: $('status'),
  adapter: $('adapter'),
  preset: $('preset'),
  presetDesc: $('preset-desc'),
  engine: $('engine'),
  epochs: $('epochs'),
  overrides: $('overrides'),
  dropout: $('dropout'),
  labelSmoothing: $('label-smoothing'),
  augment: $('augment'),
  form: $('train-form'),
  train: $('train'),
  stop: $('stop'),
  progressBar: $('progress'),
  progressFill: $('progress-fill'),
  progressText: $('progress-text'),
  sessionEngine: $('session-engine'),
  curves: $('curves'),
  epochLog: $('epoch-log'),
  testAcc: $('test-acc'),
  confusion: $('confusion'),
  draw: $('draw'),
  clear: $('clear'),
  seen: $('seen'),
  prediction: $('prediction'),
  predictionDigit: $('prediction-digit'),
  probs: $('probs'),
  drawNote: $('draw-note'),
  parity: $('parity'),
  parityResult: $('parity-result'),
  download: $('download'),
  downloadNote: $('download-note'),
};

// Everything a test (or a curious person in the console) may want to read.
export const gpunn = {
  module: null,        // the wasm-bindgen module
  adapter: null,       // webgpu_adapter()'s answer as plain data, or null
  webgpuReason: null,  // why there is no WebGPU, when there is none
  presets: [],         // presets() as plain data
  session: null,       // the last Session created (the one drawings and parity use)
  preset: null,        // that session's preset name
  engine: null,        // "webgpu" | "cpu"
  engineName: null,    // session.engine()
  totalEpochs: 0,
  epochs: [],          // one plain result per finished epoch
  lastEpoch: null,
  confusion: null,     // {classes, counts: number[]} after the last epoch, or null
  lastPrediction: null,
  predictionRequests: 0,
  lastParity: null,
  busy: false,
  runId: 0,
  runs: null,          // the dashboard's state (runs.js), when the server has runs to show
};
window.gpunn = gpunn;

// State the modules share but a test has no business reading: whether the busy state is a
// training run (only then may Stop be pressed) and whether Stop was pressed.
export const ui = { training: false, stopRequested: false };

// ---------------------------------------------------------------------------------------------
// Small helpers

// One readable line from whatever was thrown (Error, string from Rust, anything else).
export function errorText(e) {
  let s;
  if (e instanceof Error) s = e.message || String(e);
  else if (typeof e === 'string') s = e;
  else if (e && typeof e.message === 'string') s = e.message;
  else {
    try { s = JSON.stringify(e); } catch { s = String(e); }
  }
  return String(s).replace(/\s+/g, ' ').trim() || 'unknown error';
}

// wasm answers may hold Maps, BigInts or typed arrays; keep plain JSON-able data for the UI,
// window.gpunn and the driver. Typed arrays become ordinary arrays of numbers.
export function plain(x) {
  if (x === undefined || x === null) return null;
  if (typeof x === 'bigint') return Number(x);
  if (ArrayBuffer.isView(x)) return Array.from(x, Number);
  if (x instanceof Map) return Object.fromEntries([...x].map(([k, v]) => [k, plain(v)]));
  if (Array.isArray(x)) return x.map(plain);
  if (typeof x === 'object') {
    const o = {};
    for (const k of Object.keys(x)) o[k] = plain(x[k]);
    return o;
  }
  return x;
}

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
export const fmtPct = (f, digits = 2) => (f === null || f === undefined ? '—' : `${(100 * f).toFixed(digits)} %`);
export const fmtLoss = (l) => (l === null || l === undefined ? '—' : Number(l).toPrecision(5));
export const fmtExp = (v) => (v === null || v === undefined ? '—' : Number(v).toExponential(2));

export function fmtBytes(n) {
  n = Number(n);
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}

// "4 s ago", "3 min ago", "2 h ago", "5 days ago" from unix seconds.
export function fmtAgo(unixSeconds, nowMs = Date.now()) {
  if (unixSeconds === null || unixSeconds === undefined || !Number.isFinite(Number(unixSeconds))) return '—';
  const s = Math.max(0, nowMs / 1000 - Number(unixSeconds));
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86400);
  return `${d} day${d === 1 ? '' : 's'} ago`;
}

// 75.3 → "1 min 15 s": a duration a person reads at a glance.
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '—';
  const s = Number(seconds);
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function elt(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Status line: the outcome of the last thing the user asked for, errors included.
// data-state: idle | loading | training | done | error; data-run counts Train clicks so a
// watcher can tell this run's "done" from the previous one's.

export function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
  if (state === 'error') console.error(`gpu-nn: ${text}`);
}

// Anything thrown and not caught ends up on the status line instead of only in the console.
export function reportUncaughtErrors() {
  window.addEventListener('unhandledrejection', (ev) => setStatus('error', `unexpected: ${errorText(ev.reason)}`));
  window.addEventListener('error', (ev) => {
    const msg = errorText(ev.error || ev.message);
    if (/ResizeObserver loop/.test(msg)) return; // a benign browser notice, not a failure
    setStatus('error', `unexpected: ${msg}`);
  });
}

// ---------------------------------------------------------------------------------------------
// One call into a Session at a time. The Rust side borrows the session for the whole of an
// async call (an epoch, a parity run); drawing during training must wait for the epoch to end
// rather than reach into a session that is busy, so every call goes through this queue.

let sessionQueue = Promise.resolve();
export function withSession(fn) {
  const run = sessionQueue.then(fn);
  sessionQueue = run.catch(() => {});
  return run;
}

// While training or checking parity, the controls that would start something else are off.
export function setBusy(busy) {
  gpunn.busy = busy;
  for (const c of [el.train, el.preset, el.epochs, el.overrides, el.dropout, el.labelSmoothing, el.augment]) c.disabled = busy;
  el.engine.disabled = busy || !gpunn.adapter;
  el.stop.disabled = !busy || !ui.training;
  el.parity.disabled = busy || !gpunn.session;
  el.download.disabled = busy || !gpunn.session;
}
