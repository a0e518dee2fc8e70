// Loss and accuracy curves drawn by hand on a 2D canvas (no charting library): a panel is a
// frame with epochs along the bottom and one or two value axes; the training page draws one
// panel with loss on the left and accuracy on the right, the dashboard (runs.js) a loss panel
// and an accuracy panel side by side with a colour per run. Both use the pieces below.

// The training page's colours: one per metric.
export const COLORS = {
  running: 'rgba(47, 111, 222, 0.35)',
  trainLoss: '#2f6fde',
  testLoss: '#7a4fd6',
  trainAcc: '#1d8a4e',
  testAcc: '#e07a10',
  axis: '#5d6677',
  grid: '#e6e9ef',
};

// The dashboard's colours: one per run, in the order runs are selected (Tableau's ten, which
// stay apart for most kinds of colour blindness better than a hue wheel does).
export const RUN_COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export const FONT = '12px system-ui, "DejaVu Sans", sans-serif';

export function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

// Sizes the canvas's pixels to its size on screen (sharp on high-DPI screens) and returns a
// cleared context in CSS pixels.
export function prepareCanvas(c, fallbackW = 720, fallbackH = 300) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || fallbackW, h = c.clientHeight || fallbackH;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = FONT;
  return { ctx, w, h };
}

const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);

// An axis is {min, max, ticks, fmt, label, log}; these build the two kinds the curves use.

// Loss: 0 .. a round number above the largest loss seen; or, on a log scale, whole decades
// around the positive losses (ticks at 1, 2 and 5 of each decade when there are few decades).
export function lossAxis(values, log = false) {
  if (log) {
    const pos = values.filter((v) => finite(v) && v > 0);
    let lo = pos.length ? Math.floor(Math.log10(Math.min(...pos))) : -2;
    let hi = pos.length ? Math.ceil(Math.log10(Math.max(...pos))) : 0;
    if (hi <= lo) hi = lo + 1;
    const ticks = [];
    for (let d = lo; d <= hi; d++) {
      for (const m of hi - lo <= 2 ? [1, 2, 5] : [1]) {
        const v = m * 10 ** d;
        if (v <= 10 ** hi * (1 + 1e-9)) ticks.push(v);
      }
    }
    return { min: 10 ** lo, max: 10 ** hi, ticks, fmt: (v) => Number(v.toPrecision(6)).toString(), label: 'loss (log)', log: true };
  }
  const vs = values.filter(finite);
  const maxRaw = vs.length ? Math.max(...vs) : 1;
  const step = niceStep(maxRaw || 1, 5);
  const max = Math.max(step, Math.ceil(maxRaw / step) * step);
  const ticks = [];
  for (let v = 0; v <= max + 1e-12; v += step) ticks.push(v);
  return { min: 0, max, ticks, fmt: (v) => Number(v.toPrecision(6)).toString(), label: 'loss', log: false };
}

// Accuracy: down to a round ten below the lowest accuracy, so 97 % vs 98 % is visible.
export function accuracyAxis(values) {
  const vs = values.filter(finite);
  const min = vs.length ? Math.max(0, Math.floor(Math.min(...vs) * 10 - 0.5) / 10) : 0;
  const step = niceStep(1 - min, 5);
  const ticks = [];
  for (let v = min; v <= 1 + 1e-9; v += step) ticks.push(v);
  return { min, max: 1, ticks, fmt: (v) => `${Number((100 * v).toPrecision(6))} %`, label: 'accuracy', log: false };
}

// Draws a frame in box {x, y, w, h} (the plotting area; labels go outside it) with epochs 0..xMax
// along the bottom, `left` and optionally `right` axes, and returns the mapping functions.
export function drawFrame(ctx, box, { xMax, left, right = null, xLabel = 'epoch', inset = 10 }) {
  const X = (x) => box.x + inset + (x / xMax) * (box.w - 2 * inset);
  const Y = (axis) => (v) => {
    const f = axis.log
      ? (Math.log10(v) - Math.log10(axis.min)) / (Math.log10(axis.max) - Math.log10(axis.min))
      : (v - axis.min) / (axis.max - axis.min || 1);
    return box.y + box.h - f * box.h;
  };
  const YL = Y(left);
  const YR = right ? Y(right) : null;

  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.fillStyle = COLORS.axis;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of left.ticks) {
    const y = Math.round(YL(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
    ctx.fillText(left.fmt(v), box.x - 6, y);
  }
  if (right) {
    ctx.textAlign = 'left';
    for (const v of right.ticks) ctx.fillText(right.fmt(v), box.x + box.w + 6, YR(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const xStep = Math.max(1, Math.ceil(niceStep(xMax, 10)));
  for (let x = 0; x <= xMax; x += xStep) {
    const px = Math.round(X(x)) + 0.5;
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath(); ctx.moveTo(px, box.y); ctx.lineTo(px, box.y + box.h); ctx.stroke();
    ctx.fillText(String(x), px, box.y + box.h + 5);
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w, box.h);
  ctx.fillText(xLabel, box.x + box.w / 2, box.y + box.h + 21);
  ctx.save();
  ctx.translate(box.x - 44, box.y + box.h / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle'; ctx.fillText(left.label, 0, 0);
  ctx.restore();
  if (right) {
    ctx.save();
    ctx.translate(box.x + box.w + 46, box.y + box.h / 2); ctx.rotate(Math.PI / 2);
    ctx.textBaseline = 'middle'; ctx.fillText(right.label, 0, 0);
    ctx.restore();
  }
  return { X, YL, YR };
}

// A polyline through pts ([[px, py]…], already mapped), with round markers when asked.
export function drawLine(ctx, pts, { color, width = 2, dash = [], markers = false, radius = 3.5 }) {
  if (!pts.length) return;
  ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
  ctx.setLineDash([]);
  if (markers) for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.fill(); }
}

// A legend on one line from (x, y): items {name, color, width, dash}.
export function drawLegend(ctx, x, y, items) {
  ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
  let lx = x;
  for (const { name, color, width = 2, dash = [] } of items) {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.beginPath(); ctx.moveTo(lx, y); ctx.lineTo(lx + 22, y); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = COLORS.axis; ctx.fillText(name, lx + 27, y);
    lx += 27 + ctx.measureText(name).width + 18;
  }
}

export function drawEmptyNote(ctx, box, text) {
  ctx.fillStyle = COLORS.axis; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
  ctx.fillText(text, box.x + box.w / 2, box.y + box.h / 2);
}

// One run's curves on one panel, loss on the left and accuracy on the right, as the training
// page shows them and the dashboard's run page too. epochs: [{epoch, train_loss, train_acc,
// test_loss, test_acc}…] (null where none); running: [{x: epochs as a fraction, loss}…], the
// thin line of the epoch in progress; totalEpochs: the planned number, for the x axis.
export function drawRunCurves(canvas, { epochs, running = [], totalEpochs = 0, empty = 'curves appear as training runs' }) {
  const { ctx, w, h } = prepareCanvas(canvas, 720, 300);
  const pad = { l: 58, r: 58, t: 30, b: 38 };
  const box = { x: pad.l, y: pad.t, w: w - pad.l - pad.r, h: h - pad.t - pad.b };
  const xMax = Math.max(1, totalEpochs || 0, epochs.length ? Math.max(...epochs.map((e) => e.epoch)) : 0);
  const left = lossAxis([...epochs.flatMap((e) => [e.train_loss, e.test_loss]), ...running.map((p) => p.loss)]);
  const right = accuracyAxis(epochs.flatMap((e) => [e.train_acc, e.test_acc]));
  const { X, YL, YR } = drawFrame(ctx, box, { xMax, left, right });

  const marks = epochs.length <= 60;
  drawLine(ctx, running.filter((p) => finite(p.loss) && finite(p.x)).map((p) => [X(p.x), YL(p.loss)]), { color: COLORS.running, width: 1.2 });
  const series = (key, Y) => epochs.filter((e) => finite(e[key])).map((e) => [X(e.epoch), Y(e[key])]);
  drawLine(ctx, series('train_loss', YL), { color: COLORS.trainLoss, markers: marks });
  drawLine(ctx, series('test_loss', YL), { color: COLORS.testLoss, dash: [6, 4], markers: marks });
  drawLine(ctx, series('train_acc', YR), { color: COLORS.trainAcc, markers: marks });
  drawLine(ctx, series('test_acc', YR), { color: COLORS.testAcc, markers: marks });

  drawLegend(ctx, pad.l, 12, [
    { name: 'running loss', color: COLORS.running, width: 1.2 }, { name: 'train loss', color: COLORS.trainLoss },
    { name: 'test loss', color: COLORS.testLoss, dash: [6, 4] }, { name: 'train accuracy', color: COLORS.trainAcc },
    { name: 'test accuracy', color: COLORS.testAcc },
  ]);
  if (!epochs.length && !running.length) drawEmptyNote(ctx, box, empty);
}
