// Drawing a digit: pointer events (mouse, pen and touch alike), a thick round black brush on
// white. Lifting the pen sends the canvas as PNG to the last session, which scales it to 28×28
// itself; the answer shows as the 28×28 input the network saw and its probabilities.

import { el, elt, errorText, gpunn, plain, setStatus, withSession } from './common.js';

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

// Wires the canvas and the Clear button, and starts from a blank canvas and no prediction.
export function initDrawing() {
  clearDrawing();
  showPrediction(null);
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
}
