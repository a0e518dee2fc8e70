#!/usr/bin/env node
// Drives the runs dashboard of `gpu-nn serve --runs DIR` in headless Chromium while a run
// trains, and prints what it saw as ONE JSON line, the last line of stdout.
//
//   node web/test/dashboard-check.mjs URL RUN_ID SWEEP_ID OUTDIR
//
// URL is the page (e.g. http://127.0.0.1:8123/); RUN_ID a run under DIR that is training (its id
// as api/runs gives it: its path under DIR); SWEEP_ID a sweep under DIR; OUTDIR gets
// dashboard.png (and run.png, the run's own page). Steps, each waiting on the page's DOM (see
// the hooks in web/js/runs.js), never on fixed sleeps:
//   a. the dashboard appears and lists RUN_ID           -> its row's status and epochs
//   b. RUN_ID selected for the chart; the epochs the overlay draws for it are recorded with
//      timestamps until they have grown by 2           -> timeline, running-loss points, lag
//      (lag: when the page first drew epoch n minus the `updated` time of the answer that
//      brought it, i.e. of the run's newest write then, metrics.csv's or later)
//   c. the run's own page                              -> settings shown, confusion, pictures
//   d. the sweep SWEEP_ID opened, its heat-map read     -> every cell's data attributes, both
//      with final and with best test accuracy
//   e. screenshot of the dashboard                       -> OUTDIR/dashboard.png
// Progress and the page's console go to stderr. Exit 0 when every step ran (the JSON says what
// was seen; the caller judges), 1 when a step could not be done (then the last stdout line is
// {"error": "..."}), 2 on bad usage.
//
// Environment:
//   CHROMIUM                    the browser binary (default /usr/bin/chromium, Debian's package)
//   GPU_NN_BROWSER_TIMEOUT_S    the whole run's limit in seconds (default 300)
//   GPU_NN_CHROMIUM_ARGS        extra Chromium flags, space-separated

import fs from 'node:fs';
import path from 'node:path';
import { startCheck } from './harness.mjs';

// The dashboard needs no WebGPU: without --enable-unsafe-webgpu the page finds no adapter at
// once and leaves the CPU to the training run being watched.
const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  ...(process.env.GPU_NN_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean),
];


function usage(msg) {
  console.error(`${msg}\nusage: node web/test/dashboard-check.mjs URL RUN_ID SWEEP_ID OUTDIR`);
  process.exit(2);
}

const [url, runId, sweepId, outArg] = process.argv.slice(2);
if (!url || !runId || !sweepId || !outArg) usage('dashboard-check: URL, RUN_ID, SWEEP_ID and OUTDIR are required');
try { new URL(url); } catch { usage(`dashboard-check: not a URL: ${url}`); }
const outDir = path.resolve(outArg);

const check = startCheck('dashboard-check', 300, usage);
const { log, left, fail, finish, timeoutS, started } = check;

// What the dashboard says about itself, for a message when a wait times out.
async function dashboardState(page) {
  return page.evaluate(() => {
    const R = window.gpunn && window.gpunn.runs;
    const card = document.getElementById('runs-card');
    return {
      card: card ? (card.hidden ? 'hidden' : 'shown') : 'missing',
      live: document.getElementById('runs-live')?.textContent ?? null,
      polls: R ? R.polls : null,
      lastError: R ? R.lastError : null,
      runs: R && R.list ? R.list.runs.map((r) => `${r.id}:${r.status}:${r.epochs_done}`) : null,
    };
  }).catch((e) => ({ unavailable: String(e.message).split('\n')[0] }));
}

async function waitFor(page, what, fn, arg, polling = 100) {
  try {
    return await page.waitForFunction(fn, arg, { timeout: left(), polling });
  } catch (e) {
    if (/Timeout/i.test(String(e && e.message))) {
      fail(`timed out (GPU_NN_BROWSER_TIMEOUT_S=${timeoutS}) waiting for ${what}; the dashboard: ${JSON.stringify(await dashboardState(page))}`);
    }
    throw e;
  }
}

const rowSel = (id) => `tr[data-run-id="${CSS.escape(id)}"]`;
// node has no CSS.escape; ids are paths: quote what a CSS string needs
const CSS = { escape: (s) => String(s).replace(/["\\]/g, '\\$&') };

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const page = await check.launch(CHROMIUM_FLAGS);
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => console.error(`[page ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page uncaught] ${e.message}`));
  page.on('crash', () => console.error('[page] the renderer crashed'));

  // a. The dashboard lists the run.
  check.step = `loading ${url}`;
  log(check.step);
  try {
    await page.goto(url, { waitUntil: 'load', timeout: Math.min(left(), 120_000) });
  } catch (e) {
    fail(`could not open ${url}: ${String(e.message).split('\n')[0]} (is gpu-nn serve --runs DIR running?)`);
  }
  check.step = `a: the dashboard listing ${runId}`;
  log(check.step);
  await waitFor(page, 'the dashboard to appear', () => {
    const c = document.getElementById('runs-card');
    return c && !c.hidden && window.gpunn && window.gpunn.runs && window.gpunn.runs.polls > 0;
  });
  await waitFor(page, `a row for ${runId}`, (sel) => document.querySelector(sel), rowSel(runId));
  const row0 = await page.$eval(rowSel(runId), (tr) => ({ status: tr.dataset.status, epochs_done: Number(tr.dataset.epochsDone) }));
  log(`  ${runId}: ${row0.status}, ${row0.epochs_done} epochs done`);
  if (row0.status !== 'training') log(`  note: ${runId} is ${row0.status}, not training`);

  // b. Select it; watch the overlay grow. A MutationObserver in the page notes every change of
  // the canvas's data-series / data-running with the page's clock, so no change between two
  // looks is missed.
  check.step = `b: ${runId} in the overlay`;
  log(check.step);
  await page.evaluate(({ id, sel }) => {
    const c = document.getElementById('runs-curves');
    const seen = (window.__dashboardTimeline = []);
    const note = () => {
      const series = JSON.parse(c.dataset.series || '{}');
      const running = JSON.parse(c.dataset.running || '{}');
      const last = seen[seen.length - 1];
      const e = series[id] ?? null, r = running[id] ?? null;
      const tr = document.querySelector(sel);
      const status = tr ? tr.dataset.status : null;
      if (!last || last.epochs !== e || last.running !== r || last.status !== status) {
        const d = window.gpunn.runs.runs[id];
        seen.push({ at: Date.now(), epochs: e, running: r, status, updated: d && !d.gone ? d.updated : null, detail_epochs: d && d.metrics ? d.metrics.length : null });
      }
    };
    new MutationObserver(note).observe(c, { attributes: true, attributeFilter: ['data-series', 'data-running'] });
    const tr = document.querySelector(sel);
    if (tr) new MutationObserver(note).observe(tr, { attributes: true, attributeFilter: ['data-status'] });
    note();
  }, { id: runId, sel: rowSel(runId) });
  await page.locator(`${rowSel(runId)} input.run-select`).check();
  await waitFor(page, `the overlay to draw ${runId}`, (id) => {
    const s = JSON.parse(document.getElementById('runs-curves').dataset.series || '{}');
    return s[id] !== undefined;
  }, runId);
  const first = await page.evaluate((id) => JSON.parse(document.getElementById('runs-curves').dataset.series)[id], runId);
  log(`  the overlay draws ${first} epoch(s) of ${runId}; waiting for ${first + 2}`);
  let lastLogged = first;
  const progress = setInterval(async () => {
    const n = await page.evaluate((id) => JSON.parse(document.getElementById('runs-curves').dataset.series || '{}')[id], runId).catch(() => null);
    if (n !== null && n !== lastLogged) { log(`  ${n} epoch(s) drawn`); lastLogged = n; }
  }, 1000);
  try {
    await waitFor(page, `the overlay to draw 2 more epochs of ${runId} than ${first}`, ({ id, want, sel }) => {
      const s = JSON.parse(document.getElementById('runs-curves').dataset.series || '{}');
      if ((s[id] ?? 0) >= want) return true;
      // a run that finished first cannot grow any more: say so instead of waiting out the clock
      const tr = document.querySelector(sel);
      return tr && tr.dataset.status !== 'training' ? 'ended' : false;
    }, { id: runId, want: first + 2, sel: rowSel(runId) }, 50);
  } finally {
    clearInterval(progress);
  }
  const timeline = await page.evaluate(() => window.__dashboardTimeline);
  const grown = Math.max(...timeline.map((t) => t.epochs ?? 0));
  if (grown < first + 2) fail(`${runId} stopped training with ${grown} epochs drawn, ${first} at the start: it did not grow by 2 while watched`);
  // each epoch count the first time it was drawn, against the `updated` of the answer that brought it
  const epochsShown = [];
  for (const t of timeline) {
    if (t.epochs === null || epochsShown.some((e) => e.epochs === t.epochs)) continue;
    epochsShown.push({ epochs: t.epochs, at: t.at, updated: t.updated, status: t.status, lag_ms: t.updated ? t.at - t.updated * 1000 : null });
  }
  const runningMax = Math.max(0, ...timeline.map((t) => t.running ?? 0));
  const lags = epochsShown.filter((e) => e.epochs > first && e.lag_ms !== null).map((e) => e.lag_ms);
  log(`  epochs drawn: ${epochsShown.map((e) => `${e.epochs} (+${e.lag_ms === null ? '?' : (e.lag_ms / 1000).toFixed(2)} s)`).join(', ')}; running-loss points at most ${runningMax}`);

  // c. The run's own page.
  check.step = `c: the page of ${runId}`;
  log(check.step);
  await page.click(`${rowSel(runId)} a.run-link`);
  await waitFor(page, `#run-detail for ${runId}`, (id) => {
    const d = document.getElementById('run-detail');
    return d && !d.hidden && d.dataset.runId === id && document.querySelectorAll('#run-config tr[data-key]').length > 0;
  }, runId);
  const detail = await page.evaluate(() => ({
    settings: document.querySelectorAll('#run-config tr[data-key]').length,
    epochs_listed: document.querySelectorAll('#run-metrics tbody tr').length,
    confusion: Boolean(document.querySelector('#run-confusion table.confusion')),
    pictures: Array.from(document.querySelectorAll('#run-detail .pictures img'), (i) => i.alt),
    hash: location.hash,
  }));
  log(`  ${detail.settings} settings, ${detail.epochs_listed} epochs listed, confusion ${detail.confusion ? 'shown' : 'not yet'}, pictures: ${detail.pictures.join(', ') || 'none'}`);
  await page.locator('#run-detail').screenshot({ path: path.join(outDir, 'run.png') }).catch((e) => log(`  no run.png: ${e.message}`));

  // d. The sweep's heat-map, with final then best accuracy.
  check.step = `d: the sweep ${sweepId}`;
  log(check.step);
  const sweepRow = `tr[data-sweep-id="${CSS.escape(sweepId)}"]`;
  await waitFor(page, `a row for the sweep ${sweepId}`, (sel) => document.querySelector(sel), sweepRow);
  await page.click(`${sweepRow} a.sweep-link`);
  const heat = `table#sweep-heatmap[data-sweep-id="${CSS.escape(sweepId)}"]`;
  await waitFor(page, `the heat-map of ${sweepId}`, (sel) => document.querySelector(`${sel} td[data-cell]`), heat);
  const readCells = (sel) => page.$$eval(`${sel} td[data-cell]`, (tds) => tds.map((td) => ({
    name: td.dataset.cell,
    status: td.dataset.status,
    run: td.dataset.runId || null,
    values: JSON.parse(td.dataset.values || 'null'),
    final_test_acc: td.dataset.finalTestAcc,
    best_test_acc: td.dataset.bestTestAcc,
    text: td.querySelector('.v') ? td.querySelector('.v').textContent : td.textContent,
  })));
  const cells = await readCells(heat);
  await page.locator('#sweep-detail input[name="sweep-metric"][value="best"]').check({ force: true });
  await waitFor(page, 'the heat-map in best accuracy', (sel) => document.querySelector(`${sel}[data-metric="best"]`), heat);
  const cellsBest = await readCells(heat);
  // back to the final accuracy, which the screenshot shows
  await page.locator('#sweep-detail input[name="sweep-metric"][value="final"]').check({ force: true });
  await waitFor(page, 'the heat-map in final accuracy', (sel) => document.querySelector(`${sel}[data-metric="final"]`), heat);
  log(`  ${cells.length} cells: ${cells.map((c) => `${c.name}=${c.final_test_acc || c.status}`).join(', ')}`);

  // e. Screenshot: the list, the overlay (the run and a sweep cell, so two colours and the
  // configuration differences) and the heat-map.
  check.step = 'e: screenshot';
  const other = cells.find((c) => c.run && c.status === 'finished');
  if (other) {
    await page.locator('#runs-show-cells').check();
    await waitFor(page, `a row for ${other.run}`, (sel) => document.querySelector(sel), rowSel(other.run));
    await page.locator(`${rowSel(other.run)} input.run-select`).check();
    await waitFor(page, `the overlay to draw ${other.run}`, (id) => JSON.parse(document.getElementById('runs-curves').dataset.series || '{}')[id] !== undefined, other.run);
    await page.locator('#runs-show-cells').uncheck();
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  const shot = path.join(outDir, 'dashboard.png');
  await page.locator('#runs-card').screenshot({ path: shot });
  log(`  ${shot}`);
  const diffKeys = await page.$$eval('#runs-diff tr[data-key]', (trs) => trs.map((tr) => tr.dataset.key));
  const R = await page.evaluate(() => ({ polls: window.gpunn.runs.polls, errors: window.gpunn.runs.errors, lastError: window.gpunn.runs.lastError }));

  await finish(0, {
    chromium: check.browser.version(),
    run: runId,
    row_at_start: row0,
    first_epochs: first,
    epochs_shown: epochsShown,
    timeline,
    running_max: runningMax,
    lag_ms: lags,
    detail,
    sweep: sweepId,
    cells,
    cells_best: cellsBest,
    diff_keys: diffKeys,
    polls: R.polls,
    request_errors: R.errors,
    last_error: R.lastError,
    screenshot: shot,
    seconds: (Date.now() - started) / 1000,
  });
}

main().catch((e) => check.reportFailure(e, outDir));

