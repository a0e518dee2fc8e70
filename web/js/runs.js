// The dashboard of `gpu-nn serve --runs DIR`: the run directories and sweeps under DIR, live as
// they train. Read-only: it only GETs the server's JSON, by relative URLs (any port works):
//
//   api/runs                      the runs and sweeps (404 without --runs: then #runs-card stays
//                                 hidden and nothing is asked again)
//   api/run?id=ID                 one run: config, metrics, running loss, confusion, pictures
//   api/sweep?id=ID               one sweep: its grid, cells and sweep.csv
//   api/picture?id=ID&name=NAME   a PNG that run or sweep lists
//
// Polling: three kinds (the list; the selected and the open runs; the open sweep), each with at
// most one request in flight and the next ~1 s after the last answer; every 10 s while the tab
// is hidden; doubling up to 30 s while the server does not answer. A run's details are asked
// again only when the list says it changed, or while it trains.
//
// Hooks for tests (web/test/dashboard-check.mjs), kept stable:
//   #runs-card                         hidden when the server has no api/runs
//   tr[data-run-id="ID"]               a run's row, with data-status and data-epochs-done; its
//                                      input.run-select selects it for the overlay, its
//                                      a.run-link opens #run-detail
//   tr[data-sweep-id="ID"]             a sweep's row; its a.sweep-link opens #sweep-detail
//   canvas#runs-curves                 the overlay; data-series = JSON {id: epoch points drawn},
//                                      data-running = JSON {id: running-loss points drawn}
//   #run-detail[data-run-id]           the open run ('' when none)
//   #sweep-detail[data-sweep-id]       the open sweep ('' when none)
//   table#sweep-heatmap[data-sweep-id] its grid (data-metric final|best); cells
//                                      td[data-cell="NAME"] with data-status, data-run-id,
//                                      data-values (JSON: the cell's axis values, in the axes'
//                                      order) and data-final-test-acc / data-best-test-acc:
//                                      String() of the API's numbers, which round-trips f64;
//                                      '' for null
//   window.gpunn.runs                  {polls, list, runs, selected, open, sweep, shown, …}:
//                                      shown[id] = [{epochs, at: Date.now(), updated}] each time
//                                      the overlay first drew a run with that many epochs
// What is open and selected lives in the URL's hash (#sel=ID&sel=ID&run=ID or &sweep=ID), so a
// view can be bookmarked, reloaded and left with the back button.

import { $, elt, errorText, fmtAgo, fmtDuration, fmtInt, fmtLoss, fmtPct, gpunn } from './common.js';
import { confusionTable } from './confusion.js';
import { COLORS, RUN_COLORS, accuracyAxis, drawEmptyNote, drawFrame, drawLine, drawRunCurves, lossAxis, prepareCanvas } from './curves.js';

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;
// Runs selected at first when the address names none: the ones training, at most this many.
const AUTO_SELECT = 3;

const R = {
  available: null,  // null until the server answered; then true, or false without --runs
  polls: 0,         // api/runs answers received
  list: null,       // the last api/runs answer
  listAt: 0,        // when it came (Date.now())
  runs: {},         // id -> the last api/run answer ({id, gone: true} after a 404)
  selected: [],     // ids in the overlay, in the order they were selected
  colors: {},       // id -> index into RUN_COLORS, kept while selected
  open: null,       // {kind: 'run' | 'sweep', id} or null
  sweep: null,      // the last api/sweep answer of the open sweep
  shown: {},        // id -> [{epochs, at, updated}]: when the overlay first drew each epoch count
  errors: 0,        // failed requests, all kinds
  lastError: null,
  sort: { key: 'updated', dir: -1 },
};

let E = null;       // the dashboard's elements, found at start
const pollers = {};

// ---------------------------------------------------------------------------------------------
// Asking the server

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function getJson(url) {
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new HttpError(-1, `no answer to ${url} (${errorText(e)}): is gpu-nn serve still running?`);
  }
  if (!resp.ok) {
    const text = (await resp.text().catch(() => '')).trim();
    throw new HttpError(resp.status, `${url}: HTTP ${resp.status}${text ? ` (${text.slice(0, 300)})` : ''}`);
  }
  // a static server may answer any path with its index page: that is no API
  const type = resp.headers.get('content-type') || '';
  if (!type.includes('json')) throw new HttpError(0, `${url}: not JSON (${type || 'no content type'})`);
  return resp.json();
}

const runUrl = (id) => `api/run?id=${encodeURIComponent(id)}`;
const sweepUrl = (id) => `api/sweep?id=${encodeURIComponent(id)}`;
const pictureUrl = (id, name, version) => `api/picture?id=${encodeURIComponent(id)}&name=${encodeURIComponent(name)}&v=${encodeURIComponent(version)}`;

// One loop per kind: `fn` runs, then again POLL_MS after it ended (never two at once); kick()
// asks for a run now, or right after the one in flight.
function poller(name, fn) {
  const p = { name, inFlight: false, again: false, timer: null, failures: 0, stopped: false };
  const schedule = (ms) => { clearTimeout(p.timer); p.timer = setTimeout(tick, ms); };
  async function tick() {
    p.timer = null;
    if (p.inFlight || p.stopped) return;
    p.inFlight = true;
    let ok = true;
    try {
      await fn();
      p.failures = 0;
    } catch (e) {
      ok = false;
      p.failures += 1;
      R.errors += 1;
      R.lastError = errorText(e); // it names the address asked
      console.warn(`gpu-nn dashboard: ${R.lastError}`);
    }
    p.inFlight = false;
    if (p.stopped) return;
    if (p.again) { p.again = false; schedule(0); return; }
    const base = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
    schedule(ok ? base : Math.min(MAX_BACKOFF_MS, base * 2 ** p.failures));
    renderLive();
  }
  p.kick = () => {
    if (p.stopped) return;
    if (p.inFlight) p.again = true;
    else schedule(0);
  };
  p.stop = () => { p.stopped = true; clearTimeout(p.timer); };
  return p;
}

async function pollList() {
  let list;
  try {
    list = await getJson('api/runs');
  } catch (e) {
    if (R.available === null && e instanceof HttpError && (e.status === 404 || e.status === 0)) {
      // no --runs (or a static server): no dashboard, and nothing is asked again
      R.available = false;
      for (const p of Object.values(pollers)) p.stop();
      E.card.hidden = true;
      return;
    }
    throw e;
  }
  const first = R.available !== true;
  R.available = true;
  R.polls += 1;
  R.list = list;
  R.listAt = Date.now();
  E.card.hidden = false;
  if (first) {
    applyHash();
    if (!R.selected.length && !readHash().sel.length) autoSelect();
  }
  renderList();
  renderSweepList();
  renderLegend();
}

const listRun = (id) => R.list?.runs.find((r) => r.id === id) || null;
const listSweep = (id) => R.list?.sweeps.find((s) => s.id === id) || null;

// The runs whose details the page shows: the selected ones and the open one.
function wantedRuns() {
  const ids = [...R.selected];
  if (R.open?.kind === 'run' && !ids.includes(R.open.id)) ids.push(R.open.id);
  return ids;
}

async function pollRuns() {
  const changed = new Set();
  for (const id of wantedRuns()) {
    const have = R.runs[id];
    const entry = listRun(id);
    const stale = !have || have.gone || have.status === 'training' || !entry ||
      entry.updated > have.updated || entry.status !== have.status || entry.epochs_done !== have.epochs_done;
    if (!stale) continue;
    try {
      const d = await getJson(runUrl(id));
      d.fetchedAt = Date.now();
      R.runs[id] = d;
    } catch (e) {
      if (!(e instanceof HttpError && e.status === 404)) throw e;
      R.runs[id] = { id, gone: true };
    }
    changed.add(id);
  }
  if (!changed.size) return;
  drawOverlay();
  renderLegend();
  renderDiff();
  if (R.open?.kind === 'run' && changed.has(R.open.id)) renderRunDetail();
}

async function pollSweep() {
  if (R.open?.kind !== 'sweep') return;
  const id = R.open.id;
  const have = R.sweep && R.sweep.id === id ? R.sweep : null;
  const entry = listSweep(id);
  if (have && !have.gone && entry && !(entry.updated > have.updated) && !entry.training && !have.training) return;
  try {
    R.sweep = await getJson(sweepUrl(id));
  } catch (e) {
    if (!(e instanceof HttpError && e.status === 404)) throw e;
    R.sweep = { id, gone: true };
  }
  renderSweepDetail();
}

// ---------------------------------------------------------------------------------------------
// Selection, navigation and the address

function readHash() {
  const q = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { sel: q.getAll('sel'), run: q.get('run'), sweep: q.get('sweep'), ours: q.has('sel') || q.has('run') || q.has('sweep') };
}

function hashFor(open = R.open) {
  const q = new URLSearchParams();
  for (const id of R.selected) q.append('sel', id);
  if (open) q.set(open.kind, open.id);
  const s = q.toString();
  return s ? `#${s}` : '#';
}

function applyHash() {
  const h = readHash();
  if (!h.ours && location.hash && location.hash !== '#') return; // an anchor of the page's own
  setSelection(h.sel, false);
  R.open = h.run !== null ? { kind: 'run', id: h.run } : h.sweep !== null ? { kind: 'sweep', id: h.sweep } : null;
  if (R.open?.kind !== 'sweep') R.sweep = null;
  renderAll();
  pollers.runs.kick();
  pollers.sweep.kick();
}

// Opens a run's or a sweep's page (or closes it: kind null), as a new history entry.
function openView(kind, id) {
  const hash = hashFor(kind ? { kind, id } : null);
  if (location.hash !== hash) location.hash = hash; // hashchange applies it
  else applyHash();
  if (kind) requestAnimationFrame(() => (kind === 'run' ? E.detail : E.sweepDetail).scrollIntoView({ behavior: 'smooth', block: 'start' }));
}

function setSelection(ids, record = true) {
  R.selected = [...new Set(ids)];
  for (const id of Object.keys(R.colors)) if (!R.selected.includes(id)) delete R.colors[id];
  for (const id of R.selected) {
    if (R.colors[id] !== undefined) continue;
    // the first colour no selected run has (past ten, they repeat)
    const used = new Set(Object.values(R.colors));
    let k = 0;
    while (used.has(k)) k++;
    R.colors[id] = k;
  }
  if (record) history.replaceState(null, '', hashFor());
}

function toggleSelect(id, on) {
  const ids = R.selected.filter((x) => x !== id);
  if (on) ids.push(id);
  setSelection(ids);
  renderList();
  drawOverlay();
  renderLegend();
  renderDiff();
  if (R.open?.kind === 'run') renderRunDetail();
  pollers.runs.kick();
}

const colorOf = (id) => RUN_COLORS[(R.colors[id] ?? 0) % RUN_COLORS.length];

function autoSelect() {
  const runs = R.list.runs.filter((r) => r.status !== 'unreadable');
  let pick = runs.filter((r) => r.status === 'training').sort((a, b) => b.updated - a.updated).slice(0, AUTO_SELECT);
  // else the newest run, one of its own before a sweep's cell
  const own = (r) => (r.sweep === null || r.sweep === undefined ? 1 : 0);
  if (!pick.length) pick = [...runs].sort((a, b) => own(b) - own(a) || b.updated - a.updated).slice(0, 1);
  if (!pick.length) return;
  setSelection(pick.map((r) => r.id));
  pollers.runs.kick();
}

// ---------------------------------------------------------------------------------------------
// Formatting

const STATUS_ORDER = { training: 0, stopped: 1, diverged: 2, finished: 3, pending: 4, unreadable: 5 };
const num = (v) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? null : Number(v));
// data-* values that keep the API's numbers exactly: String() of a parsed JSON number prints
// the shortest digits that read back to the same f64, as the server's writer does
const exact = (v) => (v === null || v === undefined ? '' : String(v));
const dateOf = (unix) => (num(unix) ? new Date(unix * 1000).toLocaleString() : '');

function badge(status, title) {
  return elt('span', { class: 'badge', 'data-status': status, title: title || null }, status);
}

// Sets a node's text only when it changed: live updates keep selection and hover intact.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// config.json as [key, value] pairs: nested objects flattened to dotted keys (optimizer.lr),
// arrays of plain values kept whole (shown on one line).
function flattenConfig(obj, prefix = '', out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flattenConfig(v, key, out);
    else if (Array.isArray(v) && v.some((x) => x && typeof x === 'object')) v.forEach((x, i) => (x && typeof x === 'object' ? flattenConfig(x, `${key}.${i}`, out) : out.push([`${key}.${i}`, x])));
    else out.push([key, v]);
  }
  return out;
}

function configValue(v) {
  if (v === undefined) return '—';
  if (v === null) return 'none';
  if (Array.isArray(v)) return v.map((x) => String(x)).join(', ');
  return String(v);
}

// ---------------------------------------------------------------------------------------------
// The list of runs

const rowsById = new Map();

function makeRunRow(id) {
  const cb = elt('input', { type: 'checkbox', class: 'run-select' });
  cb.addEventListener('change', () => toggleSelect(id, cb.checked));
  const link = elt('a', { class: 'run-link', href: `#run=${encodeURIComponent(id)}` });
  link.addEventListener('click', (ev) => {
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    openView('run', id);
  });
  const swatch = elt('span', { class: 'swatch' });
  const where = elt('span', { class: 'where' });
  const title = elt('div', { class: 'run-title' });
  const status = elt('td', { class: 'status' });
  const epochsText = elt('span');
  const bar = elt('div', { class: 'minibar' }, elt('div'));
  const cells = {
    trainLoss: elt('td', { class: 'num' }), testLoss: elt('td', { class: 'num' }), testAcc: elt('td', { class: 'num' }),
    best: elt('td', { class: 'num' }), updated: elt('td', { class: 'num ago' }),
  };
  const tr = elt('tr', { 'data-run-id': id },
    elt('td', { class: 'sel' }, cb),
    elt('td', { class: 'name' }, elt('div', { class: 'name-line' }, swatch, link, where), title),
    status,
    elt('td', { class: 'num epochs' }, epochsText, bar),
    cells.trainLoss, cells.testLoss, cells.testAcc, cells.best, cells.updated);
  tr.refs = { cb, link, swatch, where, title, status, epochsText, bar, ...cells };
  return tr;
}

function updateRunRow(tr, r) {
  const f = tr.refs;
  const selected = R.selected.includes(r.id);
  tr.dataset.status = r.status;
  tr.dataset.epochsDone = String(r.epochs_done ?? 0);
  tr.classList.toggle('selected', selected);
  tr.classList.toggle('open', R.open?.kind === 'run' && R.open.id === r.id);
  f.cb.checked = selected;
  f.cb.setAttribute('aria-label', `compare ${r.id} in the chart`);
  f.swatch.style.background = selected ? colorOf(r.id) : 'transparent';
  setText(f.link, r.name || r.id);
  f.link.title = r.id;
  setText(f.where, r.sweep !== null && r.sweep !== undefined ? `in sweep ${r.sweep}` : r.id !== r.name ? r.id : '');
  const titleText = r.status === 'unreadable' ? r.error || 'unreadable' : r.title || '';
  setText(f.title, titleText);
  f.title.title = titleText;
  if (f.status.dataset.status !== r.status || f.status.title !== (r.error || '')) {
    f.status.replaceChildren(badge(r.status, r.error));
    f.status.dataset.status = r.status;
    f.status.title = r.error || '';
  }
  const planned = num(r.epochs);
  setText(f.epochsText, `${r.epochs_done ?? 0} / ${planned ?? '?'}`);
  f.bar.firstChild.style.width = `${planned ? Math.min(100, (100 * (r.epochs_done ?? 0)) / planned) : 0}%`;
  const last = r.last || {};
  setText(f.trainLoss, fmtLoss(last.train_loss));
  setText(f.testLoss, fmtLoss(last.test_loss ?? last.val_loss));
  f.testLoss.title = last.test_loss === null && last.val_loss !== null && last.val_loss !== undefined ? 'validation loss (no test set)' : '';
  setText(f.testAcc, fmtPct(last.test_acc ?? last.val_acc));
  setText(f.best, fmtPct(r.best_test_acc));
  setText(f.updated, fmtAgo(r.updated));
  f.updated.title = dateOf(r.updated);
}

function sortValue(r, key) {
  const last = r.last || {};
  switch (key) {
    case 'name': return r.id;
    case 'status': return STATUS_ORDER[r.status] ?? 9;
    case 'epochs': return r.epochs_done ?? 0;
    case 'train_loss': return num(last.train_loss);
    case 'test_loss': return num(last.test_loss ?? last.val_loss);
    case 'test_acc': return num(last.test_acc ?? last.val_acc);
    case 'best': return num(r.best_test_acc);
    default: return num(r.updated);
  }
}

function compareRuns(a, b) {
  const { key, dir } = R.sort;
  const x = sortValue(a, key), y = sortValue(b, key);
  if (x === null && y === null) return a.id.localeCompare(b.id);
  if (x === null) return 1; // nothing to compare goes last either way
  if (y === null) return -1;
  const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
  return c ? dir * c : a.id.localeCompare(b.id);
}

function renderList() {
  if (!R.list) return;
  E.root.textContent = `in ${R.list.root}`;
  const text = E.filter.value.trim().toLowerCase();
  const status = E.statusFilter.value;
  const cells = E.showCells.checked;
  const all = R.list.runs;
  const shown = all.filter((r) => R.selected.includes(r.id) || (R.open?.kind === 'run' && R.open.id === r.id) ||
    ((cells || r.sweep === null || r.sweep === undefined) && (!status || r.status === status) &&
      (!text || `${r.id} ${r.title || ''}`.toLowerCase().includes(text))));
  shown.sort(compareRuns);
  const keep = new Set(shown.map((r) => r.id));
  for (const [id, tr] of rowsById) if (!keep.has(id)) { tr.remove(); rowsById.delete(id); }
  let prev = null;
  for (const r of shown) {
    let tr = rowsById.get(r.id);
    if (!tr) { tr = makeRunRow(r.id); rowsById.set(r.id, tr); }
    updateRunRow(tr, r);
    // moved only when out of place, so a row under the pointer stays put
    const want = prev ? prev.nextSibling : E.body.firstChild;
    if (want !== tr) E.body.insertBefore(tr, want);
    prev = tr;
  }
  const hiddenCells = cells ? 0 : all.filter((r) => r.sweep !== null && r.sweep !== undefined && !keep.has(r.id)).length;
  const notes = [];
  if (!all.length) notes.push(`No run directories under ${R.list.root} yet: gpu-nn train --out ${R.list.root}/NAME writes one, and it shows here as it trains.`);
  else if (!shown.length) notes.push('No run matches the filter.');
  if (hiddenCells) notes.push(`${hiddenCells} sweep cell${hiddenCells === 1 ? ' is' : 's are'} not listed: tick "sweep cells", or open the sweep.`);
  if (R.list.truncated) notes.push('The folder is large: the scan stopped before the end, so some runs are missing.');
  E.empty.textContent = notes.join(' ');
  E.empty.hidden = !notes.length;
  for (const th of E.table.querySelectorAll('th[data-sort]')) {
    th.dataset.dir = th.dataset.sort === R.sort.key ? (R.sort.dir > 0 ? 'asc' : 'desc') : '';
    th.setAttribute('aria-sort', th.dataset.dir ? (R.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
}

// Sweep rows are rebuilt only when what they say changes (their age is updated in place), so a
// click on a link never lands on a row that was replaced under it.
const sweepRows = new Map(); // id -> {tr, sig, ago}

function makeSweepRow(s) {
  const link = elt('a', { class: 'sweep-link', href: `#sweep=${encodeURIComponent(s.id)}` }, s.name || s.id);
  link.addEventListener('click', (ev) => {
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    openView('sweep', s.id);
  });
  if (s.error) {
    return { tr: elt('tr', { 'data-sweep-id': s.id, 'data-status': 'unreadable' }, elt('td', { class: 'name' }, link), elt('td', { colSpan: 3, class: 'error-text' }, s.error)), ago: null };
  }
  const state = s.training ? 'training' : s.complete ? 'finished' : 'stopped';
  const done = s.cells ? (100 * s.finished) / s.cells : 0;
  const ago = elt('td', { class: 'num ago' });
  const tr = elt('tr', { 'data-sweep-id': s.id, 'data-status': state },
    elt('td', { class: 'name' }, elt('div', { class: 'name-line' }, link, elt('span', { class: 'where' }, s.id !== s.name ? s.id : '')),
      elt('div', { class: 'run-title', title: s.title || '' }, s.title || '')),
    elt('td', { class: 'status' }, badge(state)),
    elt('td', { class: 'num epochs' }, elt('span', {}, `${s.finished} / ${s.cells} cells${s.training ? `, ${s.training} training` : ''}`),
      elt('div', { class: 'minibar' }, elt('div', { style: `width:${done}%` }))),
    ago);
  return { tr, ago };
}

function renderSweepList() {
  const sweeps = R.list?.sweeps || [];
  E.sweepsBox.hidden = !sweeps.length;
  const keep = new Set(sweeps.map((s) => s.id));
  for (const [id, row] of sweepRows) if (!keep.has(id)) { row.tr.remove(); sweepRows.delete(id); }
  let prev = null;
  for (const s of sweeps) {
    const sig = JSON.stringify({ ...s, updated: null });
    let row = sweepRows.get(s.id);
    if (!row || row.sig !== sig) {
      const made = { ...makeSweepRow(s), sig };
      if (row) row.tr.replaceWith(made.tr);
      row = made;
      sweepRows.set(s.id, row);
    }
    row.tr.classList.toggle('open', R.open?.kind === 'sweep' && R.open.id === s.id);
    if (row.ago) { setText(row.ago, fmtAgo(s.updated)); row.ago.title = dateOf(s.updated); }
    const want = prev ? prev.nextSibling : E.sweepsBody.firstChild;
    if (want !== row.tr) E.sweepsBody.insertBefore(row.tr, want);
    prev = row.tr;
  }
}

// The line under the card's title: live, paused, or what went wrong.
function renderLive() {
  if (!E || !R.available) return;
  const p = Object.values(pollers);
  const failing = p.filter((x) => x.failures);
  let state, text;
  if (failing.length) {
    const worst = Math.max(...failing.map((x) => x.failures));
    state = 'error';
    text = `${R.lastError || 'the server does not answer'} — trying again in ${Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** worst) / 1000} s`;
  } else if (document.hidden) {
    state = 'paused';
    text = 'tab hidden: asking every 10 s';
  } else {
    state = 'live';
    const n = R.list.runs.length, s = R.list.sweeps.length;
    const training = R.list.runs.filter((r) => r.status === 'training').length;
    text = `live · ${n} run${n === 1 ? '' : 's'}${training ? ` (${training} training)` : ''}, ${s} sweep${s === 1 ? '' : 's'}`;
  }
  E.live.dataset.state = state;
  setText(E.live, text);
}

// ---------------------------------------------------------------------------------------------
// The overlay: the selected runs' curves, loss on the left panel and accuracy on the right, a
// colour per run; solid = train, dashed = test, dotted = validation, thin = running loss.

const STYLE = { train: [], test: [6, 4], val: [2, 3] };
let overlayLayout = null; // the last drawing's panels and scales, for the pointer
let hoverEpoch = null;

function overlayOptions() {
  const o = {};
  for (const cb of E.curveOptions.querySelectorAll('input[type=checkbox]')) o[cb.value] = cb.checked;
  return o;
}

function runningPoints(d) {
  return (d.running || []).filter((p) => num(p.epoch) !== null && num(p.loss) !== null).map((p) => ({ x: Number(p.epoch), loss: Number(p.loss) }));
}

function drawOverlay() {
  const c = E.curves;
  const { ctx, w, h } = prepareCanvas(c, 900, 340);
  const opt = overlayOptions();
  const runs = R.selected.map((id) => ({ id, d: R.runs[id], color: colorOf(id) })).filter((r) => r.d && !r.d.gone);
  const series = {}, running = {};

  // two panels side by side, or stacked on a narrow screen
  const pad = { l: 58, r: 16, t: 12, b: 38 };
  const gap = 88;
  const side = w >= 640;
  const pw = side ? (w - pad.l - pad.r - gap) / 2 : w - pad.l - pad.r;
  const ph = side ? h - pad.t - pad.b : (h - 2 * pad.t - 2 * pad.b) / 2;
  const lossBox = { x: pad.l, y: pad.t, w: pw, h: ph };
  const accBox = side ? { x: pad.l + pw + gap, y: pad.t, w: pw, h: ph } : { x: pad.l, y: pad.t * 2 + ph + pad.b, w: pw, h: ph };

  const xMax = Math.max(1, ...runs.map(({ d }) => Math.max(num(d.epochs) || 0, ...(d.metrics || []).map((m) => m.epoch), ...runningPoints(d).map((p) => Math.ceil(p.x)))));
  const lossKeys = ['train', 'test', 'val'].filter((k) => opt[`${k}_loss`]);
  const accKeys = ['train', 'test', 'val'].filter((k) => opt[`${k}_acc`]);
  const lossValues = runs.flatMap(({ d }) => [...(d.metrics || []).flatMap((m) => lossKeys.map((k) => m[`${k}_loss`])), ...(opt.running ? runningPoints(d).map((p) => p.loss) : [])]);
  const lossAx = lossAxis(lossValues.map(num), opt.log);
  const accAx = accuracyAxis(runs.flatMap(({ d }) => (d.metrics || []).flatMap((m) => accKeys.map((k) => m[`${k}_acc`]))).map(num));
  const L = drawFrame(ctx, lossBox, { xMax, left: lossAx });
  const A = drawFrame(ctx, accBox, { xMax, left: accAx });
  overlayLayout = { lossBox, accBox, xMax };

  const ok = (v, ax) => num(v) !== null && (!ax.log || v > 0);
  for (const { id, d, color } of runs) {
    const metrics = d.metrics || [];
    const marks = metrics.length <= 40;
    const drawnEpochs = new Set();
    for (const k of lossKeys) {
      const pts = metrics.filter((m) => ok(m[`${k}_loss`], lossAx)).map((m) => (drawnEpochs.add(m.epoch), [L.X(m.epoch), L.YL(m[`${k}_loss`])]));
      drawLine(ctx, pts, { color, width: k === 'train' ? 2 : 1.6, dash: STYLE[k], markers: marks && k === 'train', radius: 2.5 });
    }
    for (const k of accKeys) {
      const pts = metrics.filter((m) => ok(m[`${k}_acc`], accAx)).map((m) => (drawnEpochs.add(m.epoch), [A.X(m.epoch), A.YL(m[`${k}_acc`])]));
      drawLine(ctx, pts, { color, width: k === 'test' ? 2 : 1.6, dash: STYLE[k], markers: marks && k === 'test', radius: 2.5 });
    }
    let runPts = [];
    if (opt.running) {
      runPts = runningPoints(d).filter((p) => ok(p.loss, lossAx));
      ctx.globalAlpha = 0.55;
      drawLine(ctx, runPts.map((p) => [L.X(p.x), L.YL(p.loss)]), { color, width: 1.2 });
      ctx.globalAlpha = 1;
    }
    series[id] = drawnEpochs.size;
    running[id] = runPts.length;
    // when each epoch count was first drawn: what a watcher measures the lag by
    const seen = (R.shown[id] ||= []);
    if (!seen.length || seen[seen.length - 1].epochs !== drawnEpochs.size) seen.push({ epochs: drawnEpochs.size, at: Date.now(), updated: d.updated });
  }

  // the epoch under the pointer: a guide in both panels (the numbers are in the tooltip)
  if (hoverEpoch !== null && runs.length) {
    ctx.strokeStyle = 'rgba(29, 35, 48, 0.35)'; ctx.lineWidth = 1; ctx.setLineDash([3, 3]);
    for (const [X, box] of [[L.X, lossBox], [A.X, accBox]]) {
      const x = Math.round(X(hoverEpoch)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, box.y); ctx.lineTo(x, box.y + box.h); ctx.stroke();
    }
    ctx.setLineDash([]);
  }
  if (!runs.length) {
    drawEmptyNote(ctx, lossBox, R.selected.length ? 'loading…' : 'tick runs in the list to compare them here');
    drawEmptyNote(ctx, accBox, R.selected.length ? 'loading…' : 'a colour per run, as in the legend');
  }
  c.dataset.series = JSON.stringify(series);
  c.dataset.running = JSON.stringify(running);
}

function epochUnderPointer(ev) {
  if (!overlayLayout) return null;
  const r = E.curves.getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  const { lossBox, accBox, xMax } = overlayLayout;
  const box = [lossBox, accBox].find((b) => x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h);
  if (!box) return null;
  const f = (x - box.x - 10) / (box.w - 20);
  return Math.max(1, Math.min(xMax, Math.round(f * xMax)));
}

function showTooltip(ev) {
  const e = epochUnderPointer(ev);
  if (e === hoverEpoch) { if (e !== null) placeTooltip(ev); return; }
  hoverEpoch = e;
  drawOverlay();
  if (e === null) { E.tooltip.hidden = true; return; }
  const rows = R.selected.map((id) => {
    const d = R.runs[id];
    const m = d?.metrics?.find((x) => x.epoch === e);
    if (!m) return null;
    return elt('tr', {}, elt('td', {}, elt('span', { class: 'swatch', style: `background:${colorOf(id)}` }), d.name || id),
      elt('td', {}, fmtLoss(m.train_loss)), elt('td', {}, fmtLoss(m.test_loss ?? m.val_loss)),
      elt('td', {}, fmtPct(m.train_acc)), elt('td', {}, fmtPct(m.test_acc ?? m.val_acc)));
  }).filter(Boolean);
  if (!rows.length) { E.tooltip.hidden = true; return; }
  E.tooltip.replaceChildren(elt('table', {},
    elt('tr', {}, elt('th', {}, `epoch ${e}`), elt('th', {}, 'train loss'), elt('th', {}, 'test loss'), elt('th', {}, 'train acc'), elt('th', {}, 'test acc')),
    ...rows));
  E.tooltip.hidden = false;
  placeTooltip(ev);
}

function placeTooltip(ev) {
  const box = E.curves.parentElement.getBoundingClientRect();
  const tw = E.tooltip.offsetWidth;
  let x = ev.clientX - box.left + 14;
  if (x + tw > box.width) x = ev.clientX - box.left - tw - 14;
  E.tooltip.style.left = `${Math.max(0, x)}px`;
  E.tooltip.style.top = `${ev.clientY - box.top + 14}px`;
}

let legendSig = null;

function renderLegend() {
  if (!E) return;
  const facts = R.selected.map((id) => {
    const d = R.runs[id];
    const r = listRun(id) || d || { id };
    const last = r.last || (d?.metrics?.length ? d.metrics[d.metrics.length - 1] : null);
    return [id, r.name || id, r.title || id, d?.gone ? 'no longer there'
      : `${r.status ?? '…'} · ${r.epochs_done ?? 0}/${r.epochs ?? '?'} epochs${last && (last.test_acc ?? null) !== null ? ` · test ${fmtPct(last.test_acc)}` : ''}`, colorOf(id)];
  });
  // rebuilt only when it says something new: a click on × must not land on a replaced button
  const sig = JSON.stringify(facts);
  if (sig === legendSig) return;
  legendSig = sig;
  const items = facts.map(([id, name, title, text, color]) => {
    const remove = elt('button', { type: 'button', class: 'unselect', title: 'take it out of the chart', 'aria-label': `take ${id} out of the chart` }, '×');
    remove.addEventListener('click', () => toggleSelect(id, false));
    const link = elt('a', { href: `#run=${encodeURIComponent(id)}`, title }, name);
    link.addEventListener('click', (ev) => { if (ev.button === 0 && !ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); openView('run', id); } });
    return elt('span', { class: 'legend-item', 'data-run-id': id },
      elt('span', { class: 'swatch', style: `background:${color}` }), link, elt('span', { class: 'facts' }, text), remove);
  });
  const key = elt('span', { class: 'legend-key' },
    elt('span', { class: 'dash solid' }), 'train', elt('span', { class: 'dash dashed' }), 'test',
    elt('span', { class: 'dash dotted' }), 'validation', elt('span', { class: 'dash thin' }), 'running loss of the epoch in progress');
  E.legend.replaceChildren(...items, key);
}

// ---------------------------------------------------------------------------------------------
// Configuration differences between the selected runs: only the keys whose values differ.

let diffSig = null;

function renderDiff() {
  const runs = R.selected.map((id) => R.runs[id]).filter((d) => d && !d.gone && d.config);
  // rebuilt only when a configuration or the selection changed (text selected there stays)
  const sig = JSON.stringify(runs.map((d) => [d.id, colorOf(d.id), d.config]));
  if (sig === diffSig) return;
  diffSig = sig;
  if (runs.length < 2) { E.diff.hidden = true; E.diff.replaceChildren(); return; }
  const flat = runs.map((d) => new Map(flattenConfig(d.config)));
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const differing = keys.filter((k) => new Set(flat.map((m) => JSON.stringify(m.has(k) ? m.get(k) : undefined))).size > 1);
  const head = elt('tr', {}, elt('th', {}, 'setting'), ...runs.map((d) =>
    elt('th', {}, elt('span', { class: 'swatch', style: `background:${colorOf(d.id)}` }), d.name || d.id)));
  const rows = differing.map((k) => elt('tr', { 'data-key': k }, elt('th', {}, k),
    ...flat.map((m) => elt('td', {}, configValue(m.has(k) ? m.get(k) : undefined)))));
  const note = differing.length
    ? `${differing.length} of ${keys.length} settings differ; the other ${keys.length - differing.length} are the same.`
    : `The ${keys.length} settings are the same in every selected run.`;
  E.diff.replaceChildren(elt('h3', {}, `Configuration: what differs between the ${runs.length} selected runs`),
    elt('p', { class: 'hint' }, note),
    differing.length ? elt('div', { class: 'table-scroll' }, elt('table', { class: 'numbers diff' }, head, ...rows)) : '');
  E.diff.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// A run's page: its facts, curves, configuration, confusion matrix, epochs and pictures.

let detail = null; // the open run's page as built: {id, parts…, config, confusion, pictures}

function buildRunDetail(id) {
  const close = elt('a', { href: '#', class: 'close', title: 'close' }, 'close ×');
  close.addEventListener('click', (ev) => { ev.preventDefault(); openView(null); });
  const compare = elt('input', { type: 'checkbox' });
  compare.addEventListener('change', () => toggleSelect(id, compare.checked));
  const parts = {
    title: elt('h3'), badge: elt('span'), sub: elt('p', { class: 'hint mono' }), facts: elt('dl', { class: 'facts' }),
    canvas: elt('canvas', { id: 'run-detail-curves', width: 900, height: 280, 'aria-label': 'this run\'s loss and accuracy per epoch' }),
    config: elt('div', { id: 'run-config' }), confusion: elt('div', { id: 'run-confusion' }),
    metrics: elt('div', { class: 'table-scroll tall', id: 'run-metrics' }), pictures: elt('div', { id: 'run-pictures', class: 'pictures' }),
    compare,
  };
  E.detail.replaceChildren(
    elt('div', { class: 'detail-head' }, elt('div', {}, elt('div', { class: 'name-line' }, parts.title, parts.badge), parts.sub),
      elt('div', { class: 'detail-actions' }, elt('label', {}, compare, ' in the chart above'), close)),
    parts.facts, parts.canvas,
    elt('div', { class: 'detail-grid' },
      elt('section', {}, elt('h4', {}, 'Configuration'), parts.config),
      elt('section', {}, elt('h4', {}, 'Confusion matrix ', elt('span', { class: 'sub' }, 'test set, rows = true class')), parts.confusion)),
    elt('section', {}, elt('h4', {}, 'Epochs'), parts.metrics),
    elt('section', {}, elt('h4', {}, 'Pictures ', elt('span', { class: 'sub' }, 'as gpu-nn wrote them')), parts.pictures));
  detail = { id, ...parts, configKey: null, confusionKey: null, metricsKey: null, picturesKey: null };
}

function renderRunDetail() {
  const id = R.open?.kind === 'run' ? R.open.id : null;
  E.detail.dataset.runId = id ?? '';
  E.detail.hidden = id === null;
  if (id === null) { detail = null; E.detail.replaceChildren(); return; }
  if (!detail || detail.id !== id) buildRunDetail(id);
  const d = R.runs[id];
  const entry = listRun(id);
  setText(detail.title, entry?.name || d?.name || id);
  detail.compare.checked = R.selected.includes(id);
  if (!d || d.gone) {
    detail.badge.replaceChildren();
    setText(detail.sub, d?.gone ? `${id}: there is no such run under ${R.list?.root ?? 'the folder'} (any more)` : `${id}: loading…`);
    return;
  }
  detail.badge.replaceChildren(badge(d.status, d.error));
  setText(detail.sub, [d.id !== d.name ? d.id : '', d.sweep !== null && d.sweep !== undefined ? `a cell of sweep ${d.sweep}` : '', d.title || ''].filter(Boolean).join(' · '));

  // facts
  const m = d.metrics || [];
  const last = m[m.length - 1] || null;
  let best = null;
  for (const r of m) if (num(r.test_acc) !== null && (!best || r.test_acc > best.test_acc)) best = r;
  const total = m.reduce((a, r) => a + (num(r.seconds) || 0), 0);
  const facts = [
    ['epochs', `${m.length} of ${d.epochs ?? '?'}`],
    ['test accuracy', last ? fmtPct(last.test_acc) : '—'],
    ['best', best ? `${fmtPct(best.test_acc)} (epoch ${best.epoch})` : '—'],
    ['train loss', last ? fmtLoss(last.train_loss) : '—'],
    ['time', m.length ? `${fmtDuration(total)} (${fmtDuration(total / m.length)} an epoch)` : '—'],
    ['samples/s', last && num(last.samples_per_sec) !== null ? fmtInt(last.samples_per_sec) : '—'],
    ['updated', `${fmtAgo(d.updated)}`],
  ];
  if (d.error) facts.push(['stopped by', d.error]);
  detail.facts.replaceChildren(...facts.map(([k, v]) => elt('div', {}, elt('dt', {}, k), elt('dd', {}, v))));

  drawRunDetailCurves();

  const configKey = JSON.stringify(d.config);
  if (configKey !== detail.configKey) {
    detail.configKey = configKey;
    detail.config.replaceChildren(configTable(d.config));
  }
  const confusionKey = JSON.stringify(d.confusion);
  if (confusionKey !== detail.confusionKey) {
    detail.confusionKey = confusionKey;
    detail.confusion.replaceChildren(d.confusion && d.confusion.labels?.length
      ? confusionTable(d.confusion.labels.map(String), d.confusion.matrix)
      : elt('p', { class: 'hint' }, 'No confusion.csv (yet): gpu-nn writes one for a run with a test set.'));
  }
  const metricsKey = `${m.length}:${last ? JSON.stringify(last) : ''}`;
  if (metricsKey !== detail.metricsKey) {
    detail.metricsKey = metricsKey;
    detail.metrics.replaceChildren(metricsTable(m, best));
    detail.metrics.scrollTop = detail.metrics.scrollHeight; // the newest epoch in view
  }
  // pictures are rewritten at each epoch: a new address then, so the browser asks again
  const version = `${d.epochs_done}-${d.status}`;
  const picturesKey = `${(d.pictures || []).join('|')}@${version}`;
  if (picturesKey !== detail.picturesKey) {
    detail.picturesKey = picturesKey;
    detail.pictures.replaceChildren(...((d.pictures || []).length
      ? d.pictures.map((name) => {
        const url = pictureUrl(id, name, version);
        return elt('figure', {}, elt('a', { href: url, target: '_blank', rel: 'noopener' }, elt('img', { src: url, alt: name })), elt('figcaption', {}, name));
      })
      : [elt('p', { class: 'hint' }, 'None yet: gpu-nn draws them as the run goes.')]));
  }
}

function drawRunDetailCurves() {
  const d = detail && R.runs[detail.id];
  if (!d || d.gone) return;
  drawRunCurves(detail.canvas, {
    epochs: d.metrics || [],
    running: runningPoints(d),
    totalEpochs: num(d.epochs) || 0,
    empty: d.status === 'training' ? 'the first epoch is on its way' : 'no epoch in metrics.csv',
  });
}

function configTable(config) {
  if (!config || typeof config !== 'object') return elt('p', { class: 'hint' }, 'No config.json.');
  const table = elt('table', { class: 'config' });
  // top-level plain values first, then one block per section (model, optimizer, training…)
  const plainKeys = Object.entries(config).filter(([, v]) => !(v && typeof v === 'object' && !Array.isArray(v)));
  const sections = Object.entries(config).filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v));
  const addRows = (entries) => {
    for (const [k, v] of entries) {
      table.append(elt('tr', { 'data-key': k }, elt('th', {}, k), elt('td', {}, configValue(v))));
    }
  };
  addRows(flattenConfig(Object.fromEntries(plainKeys)));
  for (const [name, v] of sections) {
    table.append(elt('tr', { class: 'section' }, elt('th', { colSpan: 2 }, name)));
    addRows(flattenConfig(v).map(([k, x]) => [k, x]));
  }
  return table;
}

function metricsTable(m, best) {
  const cols = [
    ['epoch', 'epoch', String], ['step', 'step', (v) => fmtInt(v)], ['lr', 'lr', (v) => String(Number(Number(v).toPrecision(6)))],
    ['train loss', 'train_loss', fmtLoss], ['train acc', 'train_acc', fmtPct],
    ['val loss', 'val_loss', fmtLoss], ['val acc', 'val_acc', fmtPct],
    ['test loss', 'test_loss', fmtLoss], ['test acc', 'test_acc', fmtPct],
    ['seconds', 'seconds', (v) => Number(v).toFixed(2)], ['samples/s', 'samples_per_sec', fmtInt],
  ].filter(([, key]) => !['val_loss', 'val_acc'].includes(key) || m.some((r) => num(r[key]) !== null));
  const show = (v, f) => (v === null || v === undefined ? '—' : f(v));
  return elt('table', { class: 'numbers metrics' },
    elt('thead', {}, elt('tr', {}, ...cols.map(([label]) => elt('th', {}, label)))),
    elt('tbody', {}, ...m.map((r) => elt('tr', { class: best && r.epoch === best.epoch ? 'best' : '', title: best && r.epoch === best.epoch ? 'the best test accuracy' : '' },
      ...cols.map(([, key, f]) => elt('td', {}, show(r[key], f)))))));
}

// ---------------------------------------------------------------------------------------------
// A sweep's page: the grid as a heat-map of final or best test accuracy, each cell's curve on
// hover or click, its pictures and sweep.csv.

let sweepView = null; // {id, parts…, key, metric, focus, pinned}

// Light yellow (the grid's worst) to dark blue (its best), as ColorBrewer's YlGnBu.
const RAMP = [[255, 255, 217], [199, 233, 180], [65, 182, 196], [34, 94, 168], [8, 29, 88]];
function rampColor(t) {
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const c = RAMP[i].map((a, k) => Math.round(a + f * (RAMP[i + 1][k] - a)));
  return { bg: `rgb(${c.join(',')})`, dark: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] < 140 };
}

function buildSweepDetail(id) {
  const close = elt('a', { href: '#', class: 'close', title: 'close' }, 'close ×');
  close.addEventListener('click', (ev) => { ev.preventDefault(); openView(null); });
  const metric = elt('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'colour the cells by' });
  for (const [value, label] of [['final', 'final test accuracy'], ['best', 'best test accuracy']]) {
    const input = elt('input', { type: 'radio', name: 'sweep-metric', value, checked: value === 'final' });
    input.addEventListener('change', () => { if (input.checked) { sweepView.metric = value; sweepView.key = null; renderSweepDetail(); } });
    metric.append(elt('label', {}, input, label));
  }
  const parts = {
    title: elt('h3'), sub: elt('p', { class: 'hint' }), metric, grid: elt('div', { class: 'heatmap-box' }),
    scale: elt('div', { class: 'scale' }), cell: elt('div', { class: 'cell-facts' }),
    canvas: elt('canvas', { id: 'sweep-cell-curve', width: 520, height: 230, 'aria-label': 'test accuracy per epoch of the sweep\'s cells' }),
    pictures: elt('div', { class: 'pictures' }), csv: elt('div'),
  };
  E.sweepDetail.replaceChildren(
    elt('div', { class: 'detail-head' }, elt('div', {}, parts.title, parts.sub), elt('div', { class: 'detail-actions' }, close)),
    elt('div', { class: 'sweep-layout' },
      elt('div', {}, parts.metric, parts.grid, parts.scale),
      elt('div', { class: 'cell-panel' }, parts.canvas, parts.cell)),
    elt('section', {}, elt('h4', {}, 'Pictures'), parts.pictures),
    parts.csv);
  sweepView = { id, ...parts, key: null, metric: 'final', focus: null, pinned: null };
}

function renderSweepDetail() {
  const id = R.open?.kind === 'sweep' ? R.open.id : null;
  E.sweepDetail.dataset.sweepId = id ?? '';
  E.sweepDetail.hidden = id === null;
  if (id === null) { sweepView = null; E.sweepDetail.replaceChildren(); return; }
  if (!sweepView || sweepView.id !== id) buildSweepDetail(id);
  const s = R.sweep && R.sweep.id === id ? R.sweep : null;
  setText(sweepView.title, `Sweep ${listSweep(id)?.name || s?.name || id}`);
  sweepView.title.title = id;
  if (!s || s.gone) {
    setText(sweepView.sub, s?.gone ? `${id}: there is no such sweep under ${R.list?.root ?? 'the folder'} (any more)` : `${id}: loading…`);
    return;
  }
  const key = `${sweepView.metric}:${JSON.stringify(s.cells)}:${JSON.stringify(s.rows)}:${(s.pictures || []).join('|')}:${s.csv?.length ?? -1}`;
  if (key === sweepView.key) return;
  sweepView.key = key;
  const counts = {};
  for (const c of s.cells) counts[c.status] = (counts[c.status] || 0) + 1;
  const rowAxes = (s.axes || []).filter((a) => a.name !== s.columns.name).map((a) => a.name);
  setText(sweepView.sub, `${s.title ? `${s.title} · ` : ''}${s.cells.length} cells (${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ')}) · ` +
    `${s.epochs ?? '?'} epoch${s.epochs === 1 ? '' : 's'} each · rows: ${rowAxes.join(' × ') || '—'}, columns: ${s.columns.name}`);
  renderHeatmap(s, rowAxes);
  renderCellPanel();
  sweepView.pictures.replaceChildren(...((s.pictures || []).length
    ? s.pictures.map((name) => {
      const url = pictureUrl(s.id, name, `${s.finished}-${s.updated}`);
      return elt('figure', {}, elt('a', { href: url, target: '_blank', rel: 'noopener' }, elt('img', { src: url, alt: name })), elt('figcaption', {}, name));
    })
    : [elt('p', { class: 'hint' }, 'None yet.')]));
  if (sweepView.csvUrl) URL.revokeObjectURL(sweepView.csvUrl);
  sweepView.csvUrl = null;
  if (s.csv) {
    sweepView.csvUrl = URL.createObjectURL(new Blob([s.csv], { type: 'text/csv' }));
    const save = elt('a', { href: sweepView.csvUrl, download: 'sweep.csv' }, 'save sweep.csv');
    sweepView.csv.replaceChildren(elt('details', {}, elt('summary', {}, 'sweep.csv'), elt('pre', { class: 'csv' }, s.csv), save));
  } else {
    sweepView.csv.replaceChildren(elt('p', { class: 'hint' }, 'No sweep.csv yet.'));
  }
}

function cellValue(c, metric) {
  return num(metric === 'best' ? c.best_test_acc : c.final_test_acc);
}

function renderHeatmap(s, rowAxes) {
  const metric = sweepView.metric;
  // the colours span the grid's own range; a diverged cell's number is no result
  const values = s.cells.filter((c) => c.status !== 'diverged').map((c) => cellValue(c, metric)).filter((v) => v !== null);
  const lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  const bestValue = values.length ? hi : null;
  const table = elt('table', { id: 'sweep-heatmap', class: 'heatmap', 'data-sweep-id': s.id, 'data-metric': metric });
  table.append(elt('tr', {}, elt('th', { class: 'corner' }, `${rowAxes.join(' × ') || 'row'} ╲ ${s.columns.name}`),
    ...s.columns.values.map((v) => elt('th', { class: 'col' }, `${s.columns.name} ${v}`))));
  for (const row of s.rows) {
    const tr = elt('tr', {}, elt('th', { class: 'row' }, row.label));
    for (const k of row.cells) {
      const c = s.cells[k];
      if (!c) { tr.append(elt('td', { class: 'missing' }, '')); continue; }
      const v = cellValue(c, metric);
      const td = elt('td', {
        'data-cell': c.name,
        'data-status': c.status,
        'data-run-id': c.run ?? '',
        'data-values': JSON.stringify(c.values || []),
        'data-final-test-acc': exact(c.final_test_acc),
        'data-best-test-acc': exact(c.best_test_acc),
        'data-best-epoch': exact(c.best_epoch),
        tabIndex: 0,
      });
      td.classList.add(`st-${c.status}`);
      if (v !== null && c.status !== 'diverged') {
        const { bg, dark } = rampColor(hi > lo ? (v - lo) / (hi - lo) : 1);
        td.style.background = bg;
        td.style.color = dark ? '#fff' : '#1d2330';
      }
      const main = c.status === 'pending' ? 'pending'
        : c.status === 'diverged' ? 'diverged' : v === null ? '—' : fmtPct(v);
      const star = v !== null && v === bestValue && c.status !== 'diverged' ? ' ★' : '';
      const where = c.status === 'diverged' && /at epoch \d+(, step \d+)?/.exec(c.error || '');
      const sub = c.status === 'diverged' ? (where ? where[0] : v !== null ? `${fmtPct(v)} before` : '✕')
        : c.status === 'training' ? `training${c.curve?.length ? `, epoch ${c.curve.length}` : ''}`
          : c.status === 'stopped' ? 'stopped'
            : c.status === 'pending' ? 'not started'
              : metric === 'best' && c.best_epoch !== null ? `epoch ${c.best_epoch}` : metric === 'final' && num(c.best_test_acc) !== null && c.best_test_acc !== c.final_test_acc ? `best ${fmtPct(c.best_test_acc)}` : '';
      td.append(elt('span', { class: 'v' }, main + star), elt('span', { class: 'sub' }, sub));
      td.title = `${c.name}: ${c.status}${c.error ? ` — ${c.error}` : ''}`;
      td.addEventListener('mouseenter', () => { sweepView.focus = c.name; renderCellPanel(); });
      td.addEventListener('mouseleave', () => { sweepView.focus = null; renderCellPanel(); });
      td.addEventListener('focus', () => { sweepView.focus = c.name; renderCellPanel(); });
      td.addEventListener('click', () => { sweepView.pinned = sweepView.pinned === c.name ? null : c.name; markPinned(); renderCellPanel(); });
      td.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); td.click(); } });
      tr.append(td);
    }
    table.append(tr);
  }
  sweepView.grid.replaceChildren(table);
  markPinned();
  const stops = RAMP.map((c, i) => `rgb(${c.join(',')}) ${(100 * i) / (RAMP.length - 1)}%`).join(', ');
  sweepView.scale.replaceChildren(values.length
    ? elt('div', { class: 'scale-line' }, elt('span', {}, fmtPct(lo)), elt('span', { class: 'ramp', style: `background:linear-gradient(90deg, ${stops})` }), elt('span', {}, fmtPct(hi)),
      elt('span', { class: 'hint' }, `${metric} test accuracy; ★ the best; hover or click a cell for its curve`))
    : elt('p', { class: 'hint' }, 'No cell has a test accuracy yet.'));
}

function markPinned() {
  for (const td of sweepView.grid.querySelectorAll('td[data-cell]')) td.classList.toggle('pinned', td.dataset.cell === sweepView.pinned);
}

// The focused cell (hovered, else clicked, else the best) against the others' curves.
function renderCellPanel() {
  const s = R.sweep;
  if (!sweepView || !s || s.gone) return;
  const byName = new Map(s.cells.map((c) => [c.name, c]));
  let cell = byName.get(sweepView.focus) || byName.get(sweepView.pinned) || null;
  if (!cell) {
    for (const c of s.cells) if (cellValue(c, sweepView.metric) !== null && c.status !== 'diverged' && (!cell || cellValue(c, sweepView.metric) > cellValue(cell, sweepView.metric))) cell = c;
  }
  const { ctx, w, h } = prepareCanvas(sweepView.canvas, 520, 230);
  const box = { x: 58, y: 26, w: w - 58 - 16, h: h - 26 - 38 };
  const curves = s.cells.map((c) => ({ c, pts: (c.curve || []).map((v, i) => [i + 1, num(v)]).filter(([, v]) => v !== null) }));
  const xMax = Math.max(1, num(s.epochs) || 0, ...curves.map(({ pts }) => pts.length));
  const ax = accuracyAxis(curves.flatMap(({ pts }) => pts.map(([, v]) => v)));
  const { X, YL } = drawFrame(ctx, box, { xMax, left: { ...ax, label: 'test accuracy' } });
  for (const { c, pts } of curves) {
    if (c === cell) continue;
    drawLine(ctx, pts.map(([x, v]) => [X(x), YL(v)]), { color: '#c3c9d4', width: 1 });
  }
  if (cell) {
    const pts = (curves.find((x) => x.c === cell)?.pts || []).map(([x, v]) => [X(x), YL(v)]);
    drawLine(ctx, pts, { color: '#2f6fde', width: 2.5, markers: pts.length <= 40, radius: 3 });
  }
  ctx.fillStyle = COLORS.axis; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
  ctx.fillText(cell ? `${cell.name}${cell === byName.get(sweepView.focus) || cell === byName.get(sweepView.pinned) ? '' : ' (the best)'} against the other cells` : 'no cell has a curve yet', box.x, 12);
  if (!curves.some(({ pts }) => pts.length)) drawEmptyNote(ctx, box, 'curves appear as cells finish epochs');

  if (!cell) { sweepView.cell.replaceChildren(); return; }
  const names = (s.axes || []).map((a) => a.name);
  const facts = [
    ...((cell.values || []).map((v, i) => [names[i] ?? `axis ${i + 1}`, String(v)])),
    ['status', cell.status], ['final test acc', fmtPct(cell.final_test_acc)],
    ['best test acc', num(cell.best_test_acc) === null ? '—' : `${fmtPct(cell.best_test_acc)}${cell.best_epoch !== null ? ` (epoch ${cell.best_epoch})` : ''}`],
    ['time', fmtDuration(cell.seconds)],
  ];
  if (cell.error) facts.push(['stopped by', cell.error]);
  const open = cell.run
    ? elt('a', { href: `#run=${encodeURIComponent(cell.run)}`, class: 'run-link' }, 'open the run')
    : elt('span', { class: 'hint' }, 'no run directory yet');
  if (cell.run) open.addEventListener('click', (ev) => { if (ev.button === 0 && !ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); openView('run', cell.run); } });
  sweepView.cell.replaceChildren(elt('dl', { class: 'facts' }, ...facts.map(([k, v]) => elt('div', {}, elt('dt', {}, k), elt('dd', {}, v)))), open);
}

// ---------------------------------------------------------------------------------------------
// Start-up

function renderAll() {
  renderList();
  renderSweepList();
  drawOverlay();
  renderLegend();
  renderDiff();
  renderRunDetail();
  renderSweepDetail();
}

export function startRuns() {
  E = {
    card: $('runs-card'), root: $('runs-root'), live: $('runs-live'), filter: $('runs-filter'), statusFilter: $('runs-status-filter'),
    showCells: $('runs-show-cells'), table: $('runs-table'), body: $('runs-body'), empty: $('runs-empty'),
    sweepsBox: $('sweeps-box'), sweepsBody: $('sweeps-body'), curves: $('runs-curves'), legend: $('runs-legend'),
    tooltip: $('runs-tooltip'), curveOptions: $('runs-curve-options'), diff: $('runs-diff'), detail: $('run-detail'), sweepDetail: $('sweep-detail'),
  };
  if (!E.card) return; // a page without the dashboard's section
  gpunn.runs = R;
  pollers.list = poller('api/runs', pollList);
  pollers.runs = poller('api/run', pollRuns);
  pollers.sweep = poller('api/sweep', pollSweep);

  for (const x of [E.filter, E.statusFilter, E.showCells]) x.addEventListener('input', renderList);
  for (const th of E.table.querySelectorAll('th[data-sort]')) {
    th.tabIndex = 0;
    const sort = () => {
      const key = th.dataset.sort;
      R.sort = { key, dir: R.sort.key === key ? -R.sort.dir : (key === 'name' || key === 'status' || key.endsWith('loss') ? 1 : -1) };
      renderList();
    };
    th.addEventListener('click', sort);
    th.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sort(); } });
  }
  E.curveOptions.addEventListener('change', drawOverlay);
  E.curves.addEventListener('mousemove', showTooltip);
  E.curves.addEventListener('mouseleave', () => { hoverEpoch = null; E.tooltip.hidden = true; drawOverlay(); });
  new ResizeObserver(() => { drawOverlay(); if (detail) drawRunDetailCurves(); if (sweepView) renderCellPanel(); }).observe(E.card);
  window.addEventListener('hashchange', () => { if (R.available) applyHash(); });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) for (const p of Object.values(pollers)) p.kick();
    renderLive();
  });
  // the runs and the sweep start when the list first answers (applyHash kicks them)
  pollers.list.kick();
}
