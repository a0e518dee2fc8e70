// gpu-nn in the browser: the page's logic, one ES module, no framework and no build step.
//
// The Rust side lives in pkg/gpu_nn.js (wasm-bindgen --target web). Everything here is UI:
// picking what to train, feeding it the MNIST bytes, drawing what comes back, and exposing
// state in the DOM (data-* attributes) and in window.gpunn so that web/test/browser-check.mjs
// can drive the page like a person would.

const $ = (id) => document.getElementById(id);

const el = {
  status: $('status'),
  adapter: $('adapter'),
  preset: $('preset'),
  presetDesc: $('preset-desc'),
  engine: $('engine'),
  epochs: $('epochs'),
  overrides: $('overrides'),
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
const gpunn = {
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
};
window.gpunn = gpunn;

// ---------------------------------------------------------------------------------------------
// Small helpers

// One readable line from whatever was thrown (Error, string from Rust, anything else).
function errorText(e) {
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
function plain(x) {
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

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtPct = (f, digits = 2) => (f === null || f === undefined ? '—' : `${(100 * f).toFixed(digits)} %`);
const fmtLoss = (l) => (l === null || l === undefined ? '—' : Number(l).toPrecision(5));
const fmtExp = (v) => (v === null || v === undefined ? '—' : Number(v).toExponential(2));

function fmtBytes(n) {
  n = Number(n);
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}

function elt(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('data-')) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Status line: the outcome of the last thing the user asked for, errors included.
// data-state: idle | loading | training | done | error; data-run counts Train clicks so a
// watcher can tell this run's "done" from the previous one's.

function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text;
  if (state === 'error') console.error(`gpu-nn: ${text}`);
}

window.addEventListener('unhandledrejection', (ev) => setStatus('error', `unexpected: ${errorText(ev.reason)}`));
window.addEventListener('error', (ev) => {
  const msg = errorText(ev.error || ev.message);
  if (/ResizeObserver loop/.test(msg)) return; // a benign browser notice, not a failure
  setStatus('error', `unexpected: ${msg}`);
});

// ---------------------------------------------------------------------------------------------
// One call into a Session at a time. The Rust side borrows the session for the whole of an
// async call (an epoch, a parity run); drawing during training must wait for the epoch to end
// rather than reach into a session that is busy, so every call goes through this queue.

let sessionQueue = Promise.resolve();
function withSession(fn) {
  const run = sessionQueue.then(fn);
  sessionQueue = run.catch(() => {});
  return run;
}

// While training or checking parity, the controls that would start something else are off.
function setBusy(busy) {
  gpunn.busy = busy;
  for (const c of [el.train, el.preset, el.epochs, el.overrides]) c.disabled = busy;
  el.engine.disabled = busy || !gpunn.adapter;
  el.stop.disabled = !busy || !training;
  el.parity.disabled = busy || !gpunn.session;
  el.download.disabled = busy || !gpunn.session;
}

// ---------------------------------------------------------------------------------------------
// WebGPU adapter: shown so the user knows what computes (a real GPU, or SwiftShader on the CPU).

function showAdapter(info, reason) {
  el.adapter.replaceChildren();
  if (!info) {
    el.adapter.dataset.webgpu = 'false';
    el.adapter.append(elt('p', { class: 'no-webgpu' },
      `WebGPU is not available here (${reason}); training on the CPU (WebAssembly).`));
    return;
  }
  el.adapter.dataset.webgpu = 'true';
  const dl = elt('dl');
  const add = (k, v) => dl.append(elt('dt', {}, k), elt('dd', {}, v));
  add('adapter', info.name || '(no name given)');
  add('backend', String(info.backend ?? '—'));
  add('device type', String(info.device_type ?? '—'));
  const lim = info.limits || {};
  const limits = [
    ['max buffer', 'max_buffer_size', fmtBytes],
    ['max storage binding', 'max_storage_buffer_binding_size', fmtBytes],
    ['workgroup storage', 'max_compute_workgroup_storage_size', fmtBytes],
    ['invocations / workgroup', 'max_compute_invocations_per_workgroup', fmtInt],
    ['workgroups / dimension', 'max_compute_workgroups_per_dimension', fmtInt],
  ];
  for (const [label, key, f] of limits) if (lim[key] !== undefined && lim[key] !== null) add(label, f(lim[key]));
  el.adapter.append(dl);
}

// Why navigator.gpu gave nothing, in words a user can act on.
function noWebgpuReason() {
  if (!window.isSecureContext) return 'the page is not a secure context: open it on http://127.0.0.1 or https';
  if (!('gpu' in navigator)) return 'this browser has no navigator.gpu: WebGPU is missing or switched off';
  return 'navigator.gpu found no adapter';
}

// ---------------------------------------------------------------------------------------------
// Presets and the training form.

function presetByName(name) {
  return gpunn.presets.find((p) => p.name === name) || null;
}

function showPresetChoice() {
  const p = presetByName(el.preset.value);
  el.presetDesc.textContent = p ? p.description : '';
  // MNIST presets default to one epoch (a full preset can take a long time in a browser);
  // the tiny built-in ones run their own number.
  if (p && p.needs_data) {
    el.epochs.value = '1';
    el.epochs.placeholder = "preset's own";
  } else {
    el.epochs.value = '';
    el.epochs.placeholder = "preset's own";
  }
}

function deepMerge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object' && !Array.isArray(a[k])
      ? deepMerge(a[k], v) : v;
  }
  return out;
}

// The overrides JSON passed to Session.create: the text box, then the epochs field on top.
function buildOverrides() {
  let o = {};
  const text = el.overrides.value.trim();
  if (text) {
    try { o = JSON.parse(text); } catch (e) { throw new Error(`config overrides are not valid JSON: ${errorText(e)}`); }
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('config overrides must be a JSON object, e.g. {"optimizer": {"lr": 0.01}}');
  }
  const ep = el.epochs.value.trim();
  if (ep !== '') {
    const n = Number(ep);
    if (!Number.isInteger(n) || n < 1) throw new Error(`epochs must be a whole number of at least 1, not "${ep}"`);
    o = deepMerge(o, { training: { epochs: n } });
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// MNIST data: relative URLs so that both `gpu-nn serve` (/data/...) and a plain static server
// with the files in web/data/ work. Each file is fetched once per page load, raw first, then
// gzipped; Rust decodes either.

const IDX_FILES = {
  train_images: 'train-images-idx3-ubyte',
  train_labels: 'train-labels-idx1-ubyte',
  test_images: 't10k-images-idx3-ubyte',
  test_labels: 't10k-labels-idx1-ubyte',
};
const fetchedIdx = new Map(); // file name -> Promise<{url, bytes}>

// Raw IDX files start 00 00 08 <dims>; gzip starts 1f 8b. Anything else (an HTML "not found"
// page served with 200 by some servers) is treated as missing.
function looksLikeIdx(b) {
  return b.length >= 4 && ((b[0] === 0 && b[1] === 0 && b[2] === 8) || (b[0] === 0x1f && b[1] === 0x8b));
}

async function readBody(resp, onBytes) {
  if (!resp.body) return new Uint8Array(await resp.arrayBuffer());
  const reader = resp.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    onBytes(n);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

async function fetchIdxOnce(name, progress) {
  const tried = [];
  for (const url of [`data/${name}`, `data/${name}.gz`]) {
    let resp;
    try {
      resp = await fetch(url);
    } catch (e) {
      throw new Error(`could not fetch ${url}: ${errorText(e)}`);
    }
    if (resp.status === 404 || resp.status === 410) { tried.push(url); continue; }
    if (!resp.ok) throw new Error(`fetching ${url} failed: HTTP ${resp.status} ${resp.statusText}`);
    const total = Number(resp.headers.get('content-length')) || 0;
    progress.total[name] = total;
    const bytes = await readBody(resp, (n) => { progress.loaded[name] = n; progress.update(); });
    if (!looksLikeIdx(bytes)) { tried.push(`${url} (not an IDX file)`); continue; }
    progress.total[name] = bytes.length;
    return { url, bytes };
  }
  throw new Error(`MNIST file ${name} not found (tried ${tried.join(', ')}): start the page with ` +
    `"gpu-nn serve --data DIR" where DIR holds the four MNIST IDX files, or put them (gzipped or not) in web/data/`);
}

function fetchIdx(name, progress) {
  if (!fetchedIdx.has(name)) {
    const p = fetchIdxOnce(name, progress);
    fetchedIdx.set(name, p);
    p.catch(() => fetchedIdx.delete(name)); // a failure may be fixed by the user: retry next time
  }
  return fetchedIdx.get(name);
}

async function loadMnist() {
  const progress = {
    loaded: {}, total: {},
    update() {
      const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
      const l = sum(this.loaded), t = sum(this.total);
      setStatus('loading', `fetching MNIST: ${(l / 1e6).toFixed(1)}${t ? ` / ${(t / 1e6).toFixed(1)}` : ''} MB`);
    },
  };
  setStatus('loading', 'fetching MNIST…');
  const entries = await Promise.all(Object.entries(IDX_FILES).map(async ([key, name]) => [key, (await fetchIdx(name, progress)).bytes]));
  return Object.fromEntries(entries);
}

// ---------------------------------------------------------------------------------------------
// Training: create the session, then one train_epoch per epoch, updating the page as it goes.

let training = false;
let stopRequested = false;
let runningLoss = [];   // {x: epochs done as a fraction, loss} for the thin live curve
let lastCurveDraw = 0;

function resetResults() {
  gpunn.epochs = [];
  gpunn.lastEpoch = null;
  gpunn.confusion = null;
  runningLoss = [];
  el.epochLog.replaceChildren();
  el.testAcc.textContent = '—';
  el.testAcc.dataset.testAcc = '';
  el.confusion.replaceChildren(elt('p', { class: 'hint' }, 'Appears after an epoch on a preset with a test set.'));
  el.parityResult.replaceChildren();
  el.parityResult.dataset.state = 'idle';
  delete el.parityResult.dataset.passed;
  el.downloadNote.textContent = '';
  setProgress(0, '—');
  drawCurves();
}

function setProgress(fraction, text) {
  const pct = Math.max(0, Math.min(100, 100 * fraction));
  el.progressFill.style.width = `${pct}%`;
  el.progressBar.setAttribute('aria-valuenow', pct.toFixed(0));
  el.progressText.textContent = text;
}

async function train() {
  if (gpunn.busy) return;
  const preset = el.preset.value;
  const engine = el.engine.value;
  const p = presetByName(preset);
  gpunn.runId += 1;
  el.status.dataset.run = String(gpunn.runId);
  let overrides;
  try {
    overrides = buildOverrides();
  } catch (e) {
    setStatus('error', errorText(e));
    return;
  }
  training = true;
  stopRequested = false;
  setBusy(true);
  try {
    const files = p && p.needs_data ? await loadMnist() : {};
    setStatus('loading', `creating the ${engine === 'webgpu' ? 'WebGPU' : 'CPU'} session for ${preset}…`);
    const s = await withSession(() => gpunn.module.Session.create(preset, engine, files, JSON.stringify(overrides)));
    // The previous session stays usable until the new one exists; then it goes.
    const old = gpunn.session;
    if (old) await withSession(() => { try { old.free(); } catch { /* already freed */ } });
    Object.assign(gpunn, { session: s, preset, engine, engineName: String(s.engine()).replace(/unnamed \w+ adapter/, (m) => gpunn.adapter?.name || m), totalEpochs: Number(s.epochs()) });
    resetResults();
    const trainSize = Number(s.train_size());
    const testSize = Number(s.test_size());
    el.sessionEngine.textContent = `${gpunn.engineName} · ${fmtInt(trainSize)} training samples, ` +
      `${fmtInt(testSize)} test samples, ${fmtInt(Number(s.steps_per_epoch()))} steps per epoch`;
    el.sessionEngine.dataset.engine = gpunn.engineName;
    const total = gpunn.totalEpochs;
    let finished = 0;
    for (let epoch = 1; epoch <= total; epoch++) {
      setStatus('training', `training ${preset} on ${engine === 'webgpu' ? 'WebGPU' : 'the CPU'}: epoch ${epoch} of ${total}…`);
      const t0 = performance.now();
      setProgress((epoch - 1) / total, `epoch ${epoch}/${total} · starting…`);
      const onProgress = (done, all, loss) => {
        try { showEpochProgress(epoch, total, Number(done), Number(all), Number(loss), t0); } catch (e) { console.error(e); }
      };
      const { result, confusion } = await withSession(async () => {
        const result = plain(await s.train_epoch(onProgress));
        return { result, confusion: plain(s.confusion()) };
      });
      finished = epoch;
      recordEpoch(result, confusion, trainSize);
      if (stopRequested && epoch < total) break;
    }
    const last = gpunn.lastEpoch;
    const acc = last && last.test_acc !== null ? `, test accuracy ${fmtPct(last.test_acc)}` : (last ? `, train accuracy ${fmtPct(last.train_acc)}` : '');
    const stopped = finished < total ? ` (stopped after epoch ${finished} of ${total})` : '';
    setStatus('done', `trained ${preset} for ${finished} epoch${finished === 1 ? '' : 's'} on ${gpunn.engineName}${acc}${stopped}`);
    if (!p || !p.needs_data) el.drawNote.textContent = `${preset} does not take 28×28 images; train an MNIST preset to classify drawings.`;
    else if (el.prediction.dataset.state !== 'done') el.drawNote.textContent = 'Draw a digit: it is classified when you lift the pen.';
  } catch (e) {
    setStatus('error', errorText(e));
  } finally {
    training = false;
    setBusy(false);
  }
}

function showEpochProgress(epoch, total, done, all, loss, t0) {
  const secs = (performance.now() - t0) / 1000;
  const rate = secs > 0 ? done / secs : 0;
  const frac = all > 0 ? done / all : 0;
  setProgress((epoch - 1 + frac) / total,
    `epoch ${epoch}/${total} · ${fmtInt(done)} / ${fmtInt(all)} samples · loss ${fmtLoss(loss)} · ${fmtInt(rate)} samples/s`);
  if (Number.isFinite(loss)) runningLoss.push({ x: epoch - 1 + frac, loss });
  const now = performance.now();
  if (now - lastCurveDraw > 250) { lastCurveDraw = now; drawCurves(); }
}

function recordEpoch(r, confusion, trainSize) {
  const e = {
    epoch: Number(r.epoch),
    train_loss: r.train_loss ?? null,
    train_acc: r.train_acc ?? null,
    test_loss: r.test_loss ?? null,
    test_acc: r.test_acc ?? null,
    seconds: r.seconds ?? null,
  };
  gpunn.epochs.push(e);
  gpunn.lastEpoch = e;
  gpunn.confusion = confusion;
  const rate = e.seconds ? trainSize / e.seconds : null;
  const tr = elt('tr', {
    'data-epoch': e.epoch,
    'data-train-loss': e.train_loss,
    'data-train-acc': e.train_acc,
    'data-test-loss': e.test_loss,
    'data-test-acc': e.test_acc,
    'data-seconds': e.seconds,
  },
  elt('td', {}, String(e.epoch)), elt('td', {}, fmtLoss(e.train_loss)), elt('td', {}, fmtPct(e.train_acc)),
  elt('td', {}, fmtLoss(e.test_loss)), elt('td', {}, fmtPct(e.test_acc)),
  elt('td', {}, e.seconds === null ? '—' : Number(e.seconds).toFixed(2)),
  elt('td', {}, rate === null ? '—' : fmtInt(rate)));
  el.epochLog.append(tr);
  setProgress(e.epoch / gpunn.totalEpochs, `epoch ${e.epoch}/${gpunn.totalEpochs} done in ${e.seconds === null ? '?' : Number(e.seconds).toFixed(2)} s · ` +
    `train loss ${fmtLoss(e.train_loss)} · train ${fmtPct(e.train_acc)}${e.test_acc !== null ? ` · test ${fmtPct(e.test_acc)}` : ''}`);
  if (e.test_acc !== null) {
    el.testAcc.textContent = `test accuracy ${fmtPct(e.test_acc)} (epoch ${e.epoch})`;
    el.testAcc.dataset.testAcc = String(e.test_acc);
  }
  if (confusion) showConfusion(confusion);
  drawCurves();
}

// ---------------------------------------------------------------------------------------------
// Loss / accuracy curves, drawn by hand on a 2D canvas: loss on the left axis, accuracy on the
// right, epochs along the bottom; the thin line is the running loss inside epochs.

const COLORS = {
  running: 'rgba(47, 111, 222, 0.35)',
  trainLoss: '#2f6fde',
  testLoss: '#7a4fd6',
  trainAcc: '#1d8a4e',
  testAcc: '#e07a10',
  axis: '#5d6677',
  grid: '#e6e9ef',
};

function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

function drawCurves() {
  const c = el.curves;
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 720, h = c.clientHeight || 300;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '12px system-ui, "DejaVu Sans", sans-serif';

  const pad = { l: 58, r: 58, t: 30, b: 38 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  const eps = gpunn.epochs;
  const xMax = Math.max(1, gpunn.totalEpochs || 0, eps.length);

  // Loss range: 0 .. a round number above the largest loss seen.
  const losses = [...eps.flatMap((e) => [e.train_loss, e.test_loss]), ...runningLoss.map((p) => p.loss)]
    .filter((v) => v !== null && Number.isFinite(v));
  const lossMaxRaw = losses.length ? Math.max(...losses) : 1;
  const lossStep = niceStep(lossMaxRaw || 1, 5);
  const lossMax = Math.max(lossStep, Math.ceil(lossMaxRaw / lossStep) * lossStep);
  // Accuracy range: down to a round ten below the lowest accuracy, so 97 % vs 98 % is visible.
  const accs = eps.flatMap((e) => [e.train_acc, e.test_acc]).filter((v) => v !== null && Number.isFinite(v));
  const accMin = accs.length ? Math.max(0, Math.floor(Math.min(...accs) * 10 - 0.5) / 10) : 0;
  const accStep = niceStep(1 - accMin, 5);

  const inset = 10; // keeps the first and last epoch's markers off the frame
  const X = (x) => pad.l + inset + (x / xMax) * (pw - 2 * inset);
  const YL = (v) => pad.t + ph - (v / lossMax) * ph;
  const YA = (v) => pad.t + ph - ((v - accMin) / (1 - accMin || 1)) * ph;

  // Grid and axes.
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.axis;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = 0; v <= lossMax + 1e-12; v += lossStep) {
    const y = Math.round(YL(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + pw, y); ctx.stroke();
    ctx.fillText(Number(v.toPrecision(6)).toString(), pad.l - 6, y);
  }
  ctx.textAlign = 'left';
  for (let v = accMin; v <= 1 + 1e-9; v += accStep) {
    ctx.fillText(`${Number((100 * v).toPrecision(6))} %`, pad.l + pw + 6, YA(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const xStep = Math.max(1, Math.ceil(niceStep(xMax, 10)));
  for (let x = 0; x <= xMax; x += xStep) {
    const px = Math.round(X(x)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath(); ctx.moveTo(px, pad.t); ctx.lineTo(px, pad.t + ph); ctx.stroke();
    ctx.fillText(String(x), px, pad.t + ph + 5);
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.strokeRect(pad.l + 0.5, pad.t + 0.5, pw, ph);
  ctx.fillText('epoch', pad.l + pw / 2, pad.t + ph + 21);
  ctx.save();
  ctx.translate(14, pad.t + ph / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle'; ctx.fillText('loss', 0, 0);
  ctx.restore();
  ctx.save();
  ctx.translate(w - 12, pad.t + ph / 2); ctx.rotate(Math.PI / 2);
  ctx.textBaseline = 'middle'; ctx.fillText('accuracy', 0, 0);
  ctx.restore();

  // Series.
  const line = (pts, color, width, dash = [], markers = false) => {
    if (!pts.length) return;
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.setLineDash([]);
    if (markers) for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 2 * Math.PI); ctx.fill(); }
  };
  const marks = eps.length <= 60;
  line(runningLoss.map((p) => [X(p.x), YL(p.loss)]), COLORS.running, 1.2);
  const series = (key, Y) => eps.filter((e) => e[key] !== null && Number.isFinite(e[key])).map((e) => [X(e.epoch), Y(e[key])]);
  line(series('train_loss', YL), COLORS.trainLoss, 2, [], marks);
  line(series('test_loss', YL), COLORS.testLoss, 2, [6, 4], marks);
  line(series('train_acc', YA), COLORS.trainAcc, 2, [], marks);
  line(series('test_acc', YA), COLORS.testAcc, 2, [], marks);

  // Legend along the top.
  const legend = [
    ['running loss', COLORS.running, []], ['train loss', COLORS.trainLoss, []], ['test loss', COLORS.testLoss, [6, 4]],
    ['train accuracy', COLORS.trainAcc, []], ['test accuracy', COLORS.testAcc, []],
  ];
  ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
  let lx = pad.l;
  for (const [name, color, dash] of legend) {
    ctx.strokeStyle = color; ctx.lineWidth = name === 'running loss' ? 1.2 : 2; ctx.setLineDash(dash);
    ctx.beginPath(); ctx.moveTo(lx, 12); ctx.lineTo(lx + 22, 12); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = COLORS.axis; ctx.fillText(name, lx + 27, 12);
    lx += 27 + ctx.measureText(name).width + 18;
  }
  if (!eps.length && !runningLoss.length) {
    ctx.fillStyle = COLORS.axis; ctx.textAlign = 'center';
    ctx.fillText('curves appear as training runs', pad.l + pw / 2, pad.t + ph / 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix as a heat-map table: blue on the diagonal (right), red off it (wrong, scaled
// up so that a few mistakes still show), recall per true class in the last column.

function showConfusion(conf) {
  const k = Number(conf.classes);
  const counts = conf.counts;
  const table = elt('table', { class: 'confusion' });
  const head = elt('tr', {}, elt('th', { class: 'axis corner', title: 'rows: true class; columns: predicted class' }, 'true╲pred'));
  for (let j = 0; j < k; j++) head.append(elt('th', {}, String(j)));
  head.append(elt('th', { class: 'axis' }, 'recall'));
  table.append(head);
  for (let i = 0; i < k; i++) {
    const row = counts.slice(i * k, (i + 1) * k);
    const rowTotal = row.reduce((a, b) => a + b, 0) || 1;
    const tr = elt('tr', {}, elt('th', {}, String(i)));
    for (let j = 0; j < k; j++) {
      const n = row[j];
      const f = n / rowTotal;
      const alpha = i === j ? f : Math.min(1, f * 8);
      const bg = n === 0 ? '#f7f8fa' : i === j ? `rgba(47, 111, 222, ${alpha.toFixed(3)})` : `rgba(200, 54, 46, ${alpha.toFixed(3)})`;
      tr.append(elt('td', {
        style: `background:${bg};color:${alpha > 0.55 ? '#fff' : '#1d2330'}`,
        title: `true ${i}, predicted ${j}: ${n}`,
      }, n ? String(n) : '·'));
    }
    tr.append(elt('td', { class: 'recall' }, `${(100 * row[i] / rowTotal).toFixed(1)}%`));
    table.append(tr);
  }
  el.confusion.replaceChildren(table);
}

// ---------------------------------------------------------------------------------------------
// Drawing: pointer events (mouse, pen and touch alike), a thick round black brush on white.
// Lifting the pen sends the canvas as PNG to the last session, which scales it to 28×28 itself.

const dctx = el.draw.getContext('2d', { willReadFrequently: false });
let stroke = null; // {id, x, y} while a pointer is down

function clearDrawing() {
  dctx.fillStyle = '#fff';
  dctx.fillRect(0, 0, el.draw.width, el.draw.height);
}

function canvasPoint(ev) {
  const r = el.draw.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * (el.draw.width / r.width), y: (ev.clientY - r.top) * (el.draw.height / r.height) };
}

function brush() {
  dctx.strokeStyle = '#000';
  dctx.fillStyle = '#000';
  dctx.lineWidth = 18;
  dctx.lineCap = 'round';
  dctx.lineJoin = 'round';
}

el.draw.addEventListener('pointerdown', (ev) => {
  if (ev.pointerType === 'mouse' && ev.button !== 0) return;
  ev.preventDefault();
  el.draw.setPointerCapture(ev.pointerId);
  const p = canvasPoint(ev);
  stroke = { id: ev.pointerId, ...p };
  brush();
  dctx.beginPath(); dctx.arc(p.x, p.y, 9, 0, 2 * Math.PI); dctx.fill();
});

el.draw.addEventListener('pointermove', (ev) => {
  if (!stroke || ev.pointerId !== stroke.id) return;
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
  brush();
  dctx.beginPath();
  dctx.moveTo(stroke.x, stroke.y);
  for (const e of events.length ? events : [ev]) {
    const p = canvasPoint(e);
    dctx.lineTo(p.x, p.y);
    stroke.x = p.x; stroke.y = p.y;
  }
  dctx.stroke();
});

function endStroke(ev) {
  if (!stroke || ev.pointerId !== stroke.id) return;
  stroke = null;
  classifyDrawing();
}
el.draw.addEventListener('pointerup', endStroke);
el.draw.addEventListener('pointercancel', endStroke);

el.clear.addEventListener('click', () => {
  clearDrawing();
  showPrediction(null);
});

function showPrediction(r) {
  const sctx = el.seen.getContext('2d');
  sctx.fillStyle = '#000';
  sctx.fillRect(0, 0, 28, 28);
  el.probs.replaceChildren();
  const probs = r ? r.probabilities : new Array(10).fill(0);
  const top = r ? r.class : -1;
  for (let d = 0; d < probs.length; d++) {
    const pct = 100 * probs[d];
    el.probs.append(elt('div', { class: d === top ? 'prob top' : 'prob' },
      elt('span', {}, String(d)),
      elt('div', { class: 'track' }, elt('div', { class: 'fill', style: `width:${pct.toFixed(2)}%` })),
      elt('span', { class: 'pct' }, r ? `${pct.toFixed(1)}%` : '')));
  }
  if (!r) {
    el.prediction.dataset.class = '';
    el.prediction.dataset.state = 'idle';
    el.predictionDigit.textContent = '–';
    return;
  }
  // The network's input: 1 = ink, shown MNIST-style as white on black.
  const img = sctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * Math.max(0, Math.min(1, r.pixels[i] ?? 0)));
    img.data.set([v, v, v, 255], 4 * i);
  }
  sctx.putImageData(img, 0, 0);
  el.predictionDigit.textContent = String(r.class);
  el.prediction.dataset.class = String(r.class);
}

async function classifyDrawing() {
  const seq = ++gpunn.predictionRequests;
  if (!gpunn.session) {
    el.drawNote.textContent = 'Train a network first (an MNIST preset), then draw.';
    return;
  }
  el.prediction.dataset.state = 'running';
  if (gpunn.busy) el.drawNote.textContent = 'Classifying when the epoch in progress ends…';
  try {
    const blob = await new Promise((resolve, reject) =>
      el.draw.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas gave no PNG'))), 'image/png'));
    const png = new Uint8Array(await blob.arrayBuffer());
    const r = plain(await withSession(() => gpunn.session.classify_png(png)));
    if (seq !== gpunn.predictionRequests) return; // a newer stroke is on its way
    const pred = { class: Number(r.class), probabilities: r.probabilities, pixels: r.pixels, seq };
    gpunn.lastPrediction = pred;
    showPrediction(pred);
    el.prediction.dataset.seq = String(seq);
    el.prediction.dataset.state = 'done';
    el.drawNote.textContent = `The network says ${pred.class} (${(100 * pred.probabilities[pred.class]).toFixed(1)} %). Draw more, or Clear.`;
  } catch (e) {
    if (seq !== gpunn.predictionRequests) return;
    const msg = errorText(e);
    el.prediction.dataset.class = '';
    el.prediction.dataset.seq = String(seq);
    el.prediction.dataset.state = 'error';
    el.predictionDigit.textContent = '?';
    el.drawNote.textContent = `Could not classify the drawing: ${msg}`;
    setStatus('error', `classifying the drawing: ${msg}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parity: the session's engine against the f64 reference, same weights, 3 steps.

async function runParity() {
  const s = gpunn.session;
  if (!s || gpunn.busy) return;
  const pr = el.parityResult;
  setBusy(true);
  pr.dataset.state = 'running';
  delete pr.dataset.passed;
  pr.replaceChildren(elt('p', { class: 'hint' }, 'running 3 steps on the f64 reference and on the session\'s engine…'));
  setStatus('loading', `parity: 3 steps of ${gpunn.preset} on the f64 reference and on ${gpunn.engineName}…`);
  try {
    const r = plain(await withSession(() => s.parity(3)));
    gpunn.lastParity = r;
    const table = elt('table', { class: 'numbers' },
      elt('thead', {}, elt('tr', {}, elt('th', {}, 'tensor'), elt('th', {}, 'max abs error'), elt('th', {}, 'max rel error'), elt('th', {}, ''))));
    const body = elt('tbody');
    for (const t of r.tensors || []) {
      // gpu-nn's verdict is on the relative error: every tensor's max_rel within the tolerance
      const ok = Number(t.max_rel) <= Number(r.tolerance);
      body.append(elt('tr', { 'data-name': t.name, 'data-max-abs': t.max_abs, 'data-max-rel': t.max_rel },
        elt('td', { style: 'text-align:left' }, t.name), elt('td', {}, fmtExp(t.max_abs)), elt('td', {}, fmtExp(t.max_rel)),
        elt('td', { class: ok ? 'ok' : 'bad', title: ok ? 'within the tolerance' : 'over the tolerance' }, ok ? '✓' : '✗')));
    }
    table.append(body);
    const verdict = elt('p', { class: `verdict ${r.passed ? 'passed' : 'failed'}` },
      `${r.passed ? 'PASSED' : 'FAILED'} (tolerance ${fmtExp(r.tolerance)}, ${(r.tensors || []).length} tensors)`);
    pr.replaceChildren(verdict, table);
    pr.dataset.passed = String(Boolean(r.passed));
    pr.dataset.tolerance = String(r.tolerance);
    pr.dataset.state = 'done';
    setStatus('done', `parity ${r.passed ? 'PASSED' : 'FAILED'} on ${gpunn.engineName} (tolerance ${fmtExp(r.tolerance)})`);
  } catch (e) {
    const msg = errorText(e);
    pr.replaceChildren(elt('p', { class: 'error-text' }, msg));
    pr.dataset.state = 'error';
    setStatus('error', `parity: ${msg}`);
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------------
// Download: the trained model as <preset>.safetensors, which `gpu-nn eval --model` reads.

async function downloadModel() {
  const s = gpunn.session;
  if (!s || gpunn.busy) return;
  const name = `${gpunn.preset}.safetensors`;
  el.download.disabled = true;
  try {
    let bytes = await withSession(() => s.safetensors());
    if (!ArrayBuffer.isView(bytes)) bytes = new Uint8Array(bytes); // a Blob of a plain array would be its text
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = elt('a', { href: url, download: name, style: 'display:none' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    el.downloadNote.textContent = `saved ${name} (${fmtBytes(bytes.length)}): gpu-nn eval --model ${name}`;
    el.download.dataset.bytes = String(bytes.length);
    setStatus('done', `saved ${name} (${fmtBytes(bytes.length)})`);
  } catch (e) {
    setStatus('error', `download: ${errorText(e)}`);
  } finally {
    el.download.disabled = gpunn.busy || !gpunn.session;
  }
}

// ---------------------------------------------------------------------------------------------
// Start-up: load the module (dynamically, so a missing pkg/ gives a message, not a blank page),
// find the adapter, list the presets, wire the buttons.

async function main() {
  clearDrawing();
  showPrediction(null);
  drawCurves();
  new ResizeObserver(() => drawCurves()).observe(el.curves);

  setStatus('loading', 'loading the WebAssembly module…');
  try {
    gpunn.module = await import('./pkg/gpu_nn.js');
    await gpunn.module.default();
  } catch (e) {
    setStatus('error', `could not load the WebAssembly module pkg/gpu_nn.js: ${errorText(e)} ` +
      '(build it with wasm-bindgen --target web into web/pkg/, and open the page over http, e.g. gpu-nn serve)');
    showAdapter(null, 'the module did not load');
    return;
  }

  setStatus('loading', 'looking for a WebGPU adapter…');
  try {
    gpunn.adapter = plain(await gpunn.module.webgpu_adapter());
  } catch (e) {
    gpunn.adapter = null;
    gpunn.webgpuReason = `requesting an adapter failed: ${errorText(e)}`;
  }
  if (!gpunn.adapter && !gpunn.webgpuReason) gpunn.webgpuReason = noWebgpuReason();
  // wgpu leaves the name empty in the browser; the browser's own adapter info says more
  // (vendor and architecture, e.g. "google swiftshader"; the description may be withheld)
  if (gpunn.adapter && !gpunn.adapter.name) {
    try {
      const a = await navigator.gpu.requestAdapter();
      const i = a && a.info;
      if (i) gpunn.adapter.name = i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(' ');
    } catch { /* the name stays empty */ }
  }
  showAdapter(gpunn.adapter, gpunn.webgpuReason);
  if (gpunn.adapter) {
    el.engine.value = 'webgpu';
  } else {
    el.engine.querySelector('option[value="webgpu"]').disabled = true;
    el.engine.value = 'cpu';
  }

  try {
    gpunn.presets = plain(gpunn.module.presets()) || [];
  } catch (e) {
    setStatus('error', `listing the presets failed: ${errorText(e)}`);
    return;
  }
  el.preset.replaceChildren(...gpunn.presets.map((p) =>
    elt('option', { value: p.name, title: p.description }, p.needs_data ? p.name : `${p.name} (built-in data)`)));
  el.preset.value = gpunn.presets.some((p) => p.name === 'seed001') ? 'seed001' : (gpunn.presets[0]?.name ?? '');
  showPresetChoice();

  el.preset.addEventListener('change', showPresetChoice);
  el.form.addEventListener('submit', (ev) => { ev.preventDefault(); train(); });
  el.stop.addEventListener('click', () => {
    stopRequested = true;
    el.stop.disabled = true;
    setStatus('training', `${el.status.textContent.replace(/…$/, '')} — stopping after this epoch…`);
  });
  el.parity.addEventListener('click', runParity);
  el.download.addEventListener('click', downloadModel);

  setBusy(false);
  setStatus('idle', gpunn.adapter
    ? `ready: WebGPU on ${gpunn.adapter.name || 'an unnamed adapter'}; pick a preset and press Train`
    : 'ready: training on the CPU (WebAssembly); pick a preset and press Train');
}

main();
