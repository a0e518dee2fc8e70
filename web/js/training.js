// Training in the page: the presets and the form, the MNIST files fetched once, the session
// trained epoch by epoch with the page updated as it goes (progress, table, curves, confusion
// matrix), and the trained model downloaded as safetensors.

import {
  el, elt, errorText, fmtBytes, fmtInt, fmtLoss, fmtPct, gpunn, plain, setBusy, setStatus, ui, withSession,
} from './common.js';
import { sessionConfusionTable } from './confusion.js';
import { drawRunCurves } from './curves.js';


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
  // the regularisation fields, each over the text box when given (Rust checks the values)
  const num = (field, what) => {
    const v = field.value.trim();
    if (v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${what} must be a number, not "${v}"`);
    return n;
  };
  const dropout = num(el.dropout, 'dropout');
  if (dropout !== undefined) o = deepMerge(o, { training: { dropout: [dropout] } });
  const smoothing = num(el.labelSmoothing, 'label smoothing');
  if (smoothing !== undefined) o = deepMerge(o, { model: { label_smoothing: smoothing } });
  const augment = el.augment.value.trim();
  if (augment !== '') o = deepMerge(o, { training: { augment } });
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
  ui.training = true;
  ui.stopRequested = false;
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
      if (ui.stopRequested && epoch < total) break;
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
    ui.training = false;
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

// The session's curves on the page's canvas.
export function drawCurves() {
  drawRunCurves(el.curves, { epochs: gpunn.epochs, running: runningLoss, totalEpochs: gpunn.totalEpochs });
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
  if (confusion) el.confusion.replaceChildren(sessionConfusionTable(confusion));
  drawCurves();
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
// Start-up: the presets into the form, the buttons wired.

export function initTraining() {
  drawCurves();
  new ResizeObserver(() => drawCurves()).observe(el.curves);
}

// Lists the module's presets in the form; false (with the reason on the status line) when the
// module could not list them.
export function offerPresets() {
  try {
    gpunn.presets = plain(gpunn.module.presets()) || [];
  } catch (e) {
    setStatus('error', `listing the presets failed: ${errorText(e)}`);
    return false;
  }
  el.preset.replaceChildren(...gpunn.presets.map((p) =>
    elt('option', { value: p.name, title: p.description }, p.needs_data ? p.name : `${p.name} (built-in data)`)));
  el.preset.value = gpunn.presets.some((p) => p.name === 'seed001') ? 'seed001' : (gpunn.presets[0]?.name ?? '');
  showPresetChoice();

  el.preset.addEventListener('change', showPresetChoice);
  el.form.addEventListener('submit', (ev) => { ev.preventDefault(); train(); });
  el.stop.addEventListener('click', () => {
    ui.stopRequested = true;
    el.stop.disabled = true;
    setStatus('training', `${el.status.textContent.replace(/…$/, '')} — stopping after this epoch…`);
  });
  el.download.addEventListener('click', downloadModel);
  return true;
}
