// Confusion matrix as a heat-map table: blue on the diagonal (right), red off it (wrong, scaled
// up so that a few mistakes still show), recall per true class in the last column. The
// training page shows its session's; the dashboard a run's confusion.csv through the API.

import { elt } from './common.js';

// labels: the class names; rows: one array of counts per true class (columns = predicted).
export function confusionTable(labels, rows) {
  const k = labels.length;
  const table = elt('table', { class: 'confusion' });
  const head = elt('tr', {}, elt('th', { class: 'axis corner', title: 'rows: true class; columns: predicted class' }, 'true╲pred'));
  for (let j = 0; j < k; j++) head.append(elt('th', { title: labels[j] }, labels[j]));
  head.append(elt('th', { class: 'axis' }, 'recall'));
  table.append(head);
  for (let i = 0; i < k; i++) {
    const row = rows[i].map(Number);
    const rowTotal = row.reduce((a, b) => a + b, 0) || 1;
    const tr = elt('tr', {}, elt('th', { title: labels[i] }, labels[i]));
    for (let j = 0; j < k; j++) {
      const n = row[j];
      const f = n / rowTotal;
      const alpha = i === j ? f : Math.min(1, f * 8);
      const bg = n === 0 ? '#f7f8fa' : i === j ? `rgba(47, 111, 222, ${alpha.toFixed(3)})` : `rgba(200, 54, 46, ${alpha.toFixed(3)})`;
      tr.append(elt('td', {
        style: `background:${bg};color:${alpha > 0.55 ? '#fff' : '#1d2330'}`,
        title: `true ${labels[i]}, predicted ${labels[j]}: ${n}`,
      }, n ? String(n) : '·'));
    }
    tr.append(elt('td', { class: 'recall' }, `${(100 * row[i] / rowTotal).toFixed(1)}%`));
    table.append(tr);
  }
  return table;
}

// The session's answer ({classes, counts} with the counts row after row) as a table.
export function sessionConfusionTable(conf) {
  const k = Number(conf.classes);
  const labels = Array.from({ length: k }, (_, i) => String(i));
  const rows = labels.map((_, i) => conf.counts.slice(i * k, (i + 1) * k));
  return confusionTable(labels, rows);
}
