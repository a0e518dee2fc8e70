// Parity: the session's engine against the f64 reference, the same weights, 3 steps; every
// tensor's worst absolute and relative error in a table, and the verdict.

import { el, elt, errorText, fmtExp, gpunn, plain, setBusy, setStatus, withSession } from './common.js';

export async function runParity() {
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

export function initParity() {
  el.parity.addEventListener('click', runParity);
}
