#!/usr/bin/env node
// Drives gpu-nn's web page in headless Chromium like a user would, on WebGPU (SwiftShader when
// there is no GPU), and prints what came out as ONE JSON line, the last line of stdout.
//
//   node web/test/browser-check.mjs URL OUTDIR
//
// URL is the page (e.g. http://127.0.0.1:8123/ from `gpu-nn serve --port 8123`); OUTDIR gets
// model.safetensors and page.png. Steps:
//   a. seed000-hand, its own 3 epochs        -> the 12 weights, in the documents' order w1..w12
//   b. seed001, 1 epoch                       -> test accuracy, seconds, engine
//   c. Parity                                 -> {passed, tolerance, tensors}
//   d. a "1" drawn on #draw with the mouse    -> predicted class and probabilities
//   e. Download model                         -> OUTDIR/model.safetensors
//   f. full-page screenshot                   -> OUTDIR/page.png
// Progress and the page's console go to stderr. Exit 0 when every step ran (the JSON says how
// well: parity may have FAILED, the drawing may be misread: the caller judges), 1 when a step
// could not be done (then the last stdout line is {"error": "..."}), 2 on bad usage.
//
// Environment:
//   CHROMIUM                     the browser binary (default /usr/bin/chromium, Debian's package)
//   GPU_NN_BROWSER_TIMEOUT_S     the whole run's limit in seconds (default 900)
//   GPU_NN_BROWSER_WEBGPU        on (default) or off: Chromium without --enable-unsafe-webgpu,
//                                which then has no adapter here; the page must say so and train
//                                on the CPU (WebAssembly)
//   GPU_NN_BROWSER_ENGINE        webgpu (default) or cpu (the default when WebGPU is off), for
//                                steps a and b
//   GPU_NN_CHROMIUM_ARGS         extra Chromium flags, space-separated

import fs from 'node:fs';
import path from 'node:path';
import { startCheck } from './harness.mjs';

// Chromium flags. With Debian's Chromium, --enable-unsafe-webgpu alone gives WebGPU on Linux;
// with no GPU, Dawn's fallback adapter is SwiftShader's Vulkan on the CPU (Playwright adds
// --enable-unsafe-swiftshader itself; it is named here too so the list stands on its own).
const webgpuFlag = process.env.GPU_NN_BROWSER_WEBGPU || 'on';
if (!['on', 'off'].includes(webgpuFlag)) {
  console.error(`browser-check: GPU_NN_BROWSER_WEBGPU must be on or off, not ${webgpuFlag}`);
  process.exit(2);
}
const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  ...(webgpuFlag === 'on' ? ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader'] : []),
  ...(process.env.GPU_NN_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean),
];

function usage(msg) {
  console.error(`${msg}\nusage: node web/test/browser-check.mjs URL OUTDIR`);
  process.exit(2);
}

const [url, outArg] = process.argv.slice(2);
if (!url || !outArg) usage('browser-check: URL and OUTDIR are required');
try { new URL(url); } catch { usage(`browser-check: not a URL: ${url}`); }
const outDir = path.resolve(outArg);
const engine = process.env.GPU_NN_BROWSER_ENGINE || (webgpuFlag === 'on' ? 'webgpu' : 'cpu');
if (!['webgpu', 'cpu'].includes(engine)) usage(`browser-check: GPU_NN_BROWSER_ENGINE must be webgpu or cpu, not ${engine}`);

const check = startCheck('browser-check', 900, usage);
const { log, left, fail, finish, timeoutS, started } = check;

// ---------------------------------------------------------------------------------------------

async function statusOf(page) {
  return page.evaluate(() => {
    const s = document.getElementById('status');
    return { state: s.dataset.state, run: Number(s.dataset.run || 0), text: s.textContent };
  });
}

// Wait on the page while logging its progress line now and then, so a long epoch is visibly alive.
async function waitWithProgress(page, what, fn, arg) {
  let last = '';
  const timer = setInterval(async () => {
    const p = await page.evaluate(() => `${document.getElementById('status').textContent} | ${document.getElementById('progress-text').textContent}`).catch(() => null);
    if (p && p !== last) { log(`  ${what}: ${p}`); last = p; }
  }, 10_000);
  try {
    return await page.waitForFunction(fn, arg, { timeout: left(), polling: 250 });
  } catch (e) {
    if (/Timeout/i.test(String(e && e.message))) {
      const st = await statusOf(page).catch(() => null);
      fail(`timed out (GPU_NN_BROWSER_TIMEOUT_S=${timeoutS}) waiting for ${what}; the page says: ${st ? `[${st.state}] ${st.text}` : '(no answer)'}`);
    }
    throw e;
  } finally {
    clearInterval(timer);
  }
}

// Pick preset, engine and epochs in the form, press Train, wait until the run is done.
async function train(page, preset, epochs) {
  const offered = await page.$$eval('#preset option', (os) => os.map((o) => o.value));
  if (!offered.includes(preset)) fail(`the page offers no preset ${preset} (it has: ${offered.join(', ') || 'none'})`);
  await page.selectOption('#preset', preset);
  // without WebGPU the page offers only the CPU, and the choice is fixed
  if (await page.isEnabled('#engine')) await page.selectOption('#engine', engine);
  const chosen = await page.inputValue('#engine');
  if (chosen !== engine) fail(`the page trains on ${chosen}, not ${engine}, and the choice is disabled`);
  await page.fill('#epochs', epochs === null ? '' : String(epochs));
  const before = (await statusOf(page)).run;
  await page.click('#train');
  await waitWithProgress(page, `training ${preset}`, (b) => {
    const s = document.getElementById('status');
    return Number(s.dataset.run) > b && (s.dataset.state === 'done' || s.dataset.state === 'error');
  }, before);
  const st = await statusOf(page);
  if (st.state === 'error') fail(`training ${preset} on ${engine} failed; the page says: ${st.text}`);
  const info = await page.evaluate(() => ({
    epochsRun: window.gpunn.epochs.length,
    totalEpochs: window.gpunn.totalEpochs,
    lastEpoch: window.gpunn.lastEpoch,
    engineName: window.gpunn.engineName,
    preset: window.gpunn.preset,
  }));
  if (info.preset !== preset) fail(`the page trained ${info.preset}, not ${preset}`);
  if (info.epochsRun !== info.totalEpochs) fail(`training ${preset} stopped after ${info.epochsRun} of ${info.totalEpochs} epochs: ${st.text}`);
  log(`  ${st.text}`);
  return info;
}

// Weights in the documents' order: W1 = [[w1, w3], [w2, w4]], b1 = [w9, w10],
// W2 = [[w5, w7], [w6, w8]], b2 = [w11, w12]; params() gives row-major weights (rows = outputs).
function handWeights(params) {
  if (!Array.isArray(params) || params.length !== 2) fail(`seed000-hand: params() gave ${Array.isArray(params) ? params.length : typeof params} layers, expected 2`);
  for (const [i, l] of params.entries()) {
    if (l.rows !== 2 || l.cols !== 2 || l.weight.length !== 4 || l.bias.length !== 2) {
      fail(`seed000-hand: layer ${i} is ${l.rows}x${l.cols} with ${l.weight.length} weights and ${l.bias.length} biases, expected 2x2, 4 and 2`);
    }
  }
  const [L1, L2] = params;
  const w = [
    L1.weight[0], L1.weight[2], L1.weight[1], L1.weight[3], // w1 w2 w3 w4
    L2.weight[0], L2.weight[2], L2.weight[1], L2.weight[3], // w5 w6 w7 w8
    L1.bias[0], L1.bias[1], L2.bias[0], L2.bias[1],         // w9 w10 w11 w12
  ];
  if (!w.every(Number.isFinite)) fail(`seed000-hand: non-finite weights ${JSON.stringify(w)}`);
  return w;
}

// A safetensors file: u64 little-endian header length, a JSON header, the data.
function checkSafetensors(file) {
  const b = fs.readFileSync(file);
  if (b.length < 8) fail(`${file} has ${b.length} bytes: not a safetensors file`);
  const n = Number(b.readBigUInt64LE(0));
  if (n <= 0 || 8 + n > b.length) fail(`${file}: header length ${n} does not fit in ${b.length} bytes`);
  let header;
  try { header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')); } catch (e) { fail(`${file}: header is not JSON: ${e.message}`); }
  const tensors = Object.entries(header).filter(([k]) => k !== '__metadata__');
  if (!tensors.length) fail(`${file}: no tensors in the header`);
  const dataLen = b.length - 8 - n;
  for (const [name, t] of tensors) {
    if (!t || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets) || t.data_offsets[1] > dataLen) {
      fail(`${file}: tensor ${name} is malformed or past the end: ${JSON.stringify(t)}`);
    }
  }
  return { bytes: b.length, tensors: tensors.map(([name, t]) => `${name} ${t.dtype}[${t.shape.join('x')}]`) };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const page = await check.launch(CHROMIUM_FLAGS, { acceptDownloads: true });
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => console.error(`[page ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page uncaught] ${e.message}`));
  page.on('crash', () => console.error('[page] the renderer crashed'));

  check.step = `loading ${url}`;
  log(check.step);
  try {
    await page.goto(url, { waitUntil: 'load', timeout: Math.min(left(), 120_000) });
  } catch (e) {
    fail(`could not open ${url}: ${String(e.message).split('\n')[0]} (is gpu-nn serve running?)`);
  }
  await waitWithProgress(page, 'the page to load the module', () => {
    const s = document.getElementById('status');
    return s && s.dataset.state !== 'loading';
  });
  let st = await statusOf(page);
  if (st.state === 'error') fail(`the page did not start: ${st.text}`);
  const webgpu = await page.evaluate(() => window.gpunn.adapter);
  const webgpuReason = await page.evaluate(() => window.gpunn.webgpuReason);
  if (webgpu) log(`WebGPU adapter: ${JSON.stringify(webgpu)}`);
  else log(`no WebGPU adapter: ${webgpuReason}`);
  const adapterNote = await page.evaluate(() => document.getElementById('adapter').textContent.replace(/\s+/g, ' ').trim());
  if (webgpuFlag === 'off' && webgpu) fail(`Chromium without --enable-unsafe-webgpu still gave the page an adapter: ${JSON.stringify(webgpu)}`);
  if (engine === 'webgpu' && !webgpu) {
    fail(`the page found no WebGPU adapter (${webgpuReason}); Chromium flags were: ${CHROMIUM_FLAGS.join(' ')}; ` +
      'GPU_NN_BROWSER_ENGINE=cpu runs the steps on the CPU instead');
  }

  // a. The hand-worked network, its own epochs.
  check.step = 'a: seed000-hand';
  log(`${check.step} on ${engine}, its own epochs`);
  const hand = await train(page, 'seed000-hand', null);
  const params = await page.evaluate(async () => {
    const get = (o, k) => (o instanceof Map ? o.get(k) : o[k]);
    const ps = await window.gpunn.session.params();
    return Array.from(ps, (l) => ({
      rows: Number(get(l, 'rows')), cols: Number(get(l, 'cols')),
      weight: Array.from(get(l, 'weight'), Number), bias: Array.from(get(l, 'bias'), Number),
    }));
  });
  const handW = handWeights(params);
  log(`  ${hand.epochsRun} epochs; w1..w12 = ${handW.map((v) => v.toPrecision(10)).join(', ')}`);

  // b. seed001, one epoch.
  check.step = 'b: seed001';
  log(`${check.step} on ${engine}, 1 epoch (minutes on SwiftShader)`);
  // with the page's regularisation fields: dropout and label smoothing reach the session's
  // configuration, and the parity check below holds the engine to the reference with them on
  await page.click('#regularise-box summary'); // the fields sit in a closed <details>, as a user finds them
  await page.fill('#dropout', '0.2');
  await page.fill('#label-smoothing', '0.05');
  const s1 = await train(page, 'seed001', 1);
  const regularised = await page.evaluate(() => JSON.parse(window.gpunn.session.config()));
  if (JSON.stringify(regularised.training.dropout) !== '[0.2]' || regularised.model.label_smoothing !== 0.05) {
    fail(`the page's dropout and label smoothing did not reach the session: training.dropout ${JSON.stringify(regularised.training.dropout)}, model.label_smoothing ${regularised.model.label_smoothing}`);
  }
  log('  with dropout 0.2 and label smoothing 0.05 from the page\'s fields');
  const e1 = s1.lastEpoch;
  if (!e1 || e1.test_acc === null || e1.test_acc === undefined) fail('seed001: the epoch gave no test accuracy');
  const row = await page.evaluate(() => {
    const r = document.querySelector('#epoch-log tr:last-child');
    return r ? { testAcc: r.dataset.testAcc, seconds: r.dataset.seconds, epoch: r.dataset.epoch } : null;
  });
  if (!row || row.testAcc === undefined) fail('seed001: no #epoch-log row with data-test-acc');
  const pageTestAcc = Number(row.testAcc);
  const seed001 = {
    test_acc: e1.test_acc, seconds: e1.seconds, engine: s1.engineName,
    train_loss: e1.train_loss, train_acc: e1.train_acc, test_loss: e1.test_loss,
  };
  log(`  test accuracy ${(100 * e1.test_acc).toFixed(2)} % in ${Number(e1.seconds).toFixed(1)} s on ${s1.engineName}`);

  // c. Parity on the seed001 session.
  check.step = 'c: parity';
  log(check.step);
  await page.click('#parity');
  await waitWithProgress(page, 'parity', () => {
    const s = document.getElementById('parity-result').dataset.state;
    return s === 'done' || s === 'error';
  });
  const pstate = await page.evaluate(() => ({ state: document.getElementById('parity-result').dataset.state, text: document.getElementById('parity-result').textContent }));
  if (pstate.state === 'error') fail(`parity failed to run: ${pstate.text}`);
  const parity = await page.evaluate(() => window.gpunn.lastParity);
  log(`  ${parity.passed ? 'PASSED' : 'FAILED'} at tolerance ${parity.tolerance}: ` +
    (parity.tensors || []).map((t) => `${t.name} ${Number(t.max_abs).toExponential(1)}/${Number(t.max_rel).toExponential(1)}`).join(', '));

  // d. Draw a "1": one stroke down the middle, slightly slanted, like a hand would.
  check.step = 'd: drawing a 1';
  log(check.step);
  await page.click('#clear');
  await page.locator('#draw').scrollIntoViewIfNeeded();
  const box = await page.locator('#draw').boundingBox();
  if (!box) fail('#draw is not visible');
  const before = await page.evaluate(() => window.gpunn.predictionRequests);
  await page.mouse.move(box.x + box.width * 0.55, box.y + box.height * 0.16);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.46, box.y + box.height * 0.84, { steps: 30 });
  await page.mouse.up();
  await waitWithProgress(page, 'the drawing to be classified', (b) => {
    const p = document.getElementById('prediction');
    return Number(p.dataset.seq || 0) > b && (p.dataset.state === 'done' || p.dataset.state === 'error');
  }, before);
  const pred = await page.evaluate(() => ({
    state: document.getElementById('prediction').dataset.state,
    domClass: document.getElementById('prediction').dataset.class,
    note: document.getElementById('draw-note').textContent,
    last: window.gpunn.lastPrediction,
  }));
  if (pred.state === 'error') fail(`classifying the drawing failed: ${pred.note}`);
  if (String(pred.last.class) !== pred.domClass) fail(`#prediction says ${pred.domClass} but window.gpunn.lastPrediction says ${pred.last.class}`);
  const drawn = { expected: 1, class: pred.last.class, probabilities: pred.last.probabilities };
  log(`  the network says ${drawn.class}${drawn.class === 1 ? '' : ' (expected 1)'}`);

  // e. Download the model.
  check.step = 'e: download';
  log(check.step);
  const modelPath = path.join(outDir, 'model.safetensors');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: Math.min(left(), 120_000) }),
    page.click('#download'),
  ]);
  const dlFailure = await download.failure();
  if (dlFailure) fail(`the download failed: ${dlFailure}`);
  await download.saveAs(modelPath);
  if (download.suggestedFilename() !== 'seed001.safetensors') log(`  note: the page named the file ${download.suggestedFilename()}`);
  const model = checkSafetensors(modelPath);
  log(`  ${modelPath}: ${model.bytes} bytes, ${model.tensors.join(', ')}`);

  // f. Screenshot of the whole page, curves, confusion matrix, drawing and parity included.
  check.step = 'f: screenshot';
  const shot = path.join(outDir, 'page.png');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: shot, fullPage: true });
  log(`  ${shot}`);

  st = await statusOf(page);
  if (st.state === 'error') fail(`the page ended in an error: ${st.text}`);

  await finish(0, {
    webgpu: webgpu || null,
    adapter_note: adapterNote,
    engine,
    chromium: check.browser.version(),
    hand_weights: handW,
    hand_epochs: hand.epochsRun,
    seed001,
    parity,
    drawn,
    model: modelPath,
    model_bytes: model.bytes,
    model_tensors: model.tensors,
    page_test_acc: pageTestAcc,
    screenshot: shot,
    seconds: (Date.now() - started) / 1000,
  });
}

main().catch((e) => check.reportFailure(e, outDir));

