// The score history chart: inline SVG, no library. Scores are 0..100; the background
// bands are the grade cutoffs (40 blue, 60 yellow, 75 orange, 90 red).

import { esc } from './i18n.js';

const BANDS = [
  [0, 40, 'normal'],
  [40, 60, 'blue'],
  [60, 75, 'yellow'],
  [75, 90, 'orange'],
  [90, 100, 'red'],
];

/**
 * An SVG line chart of `points` ([{period, score, grade}], oldest first), as a string.
 * `extra` is an optional second series ([{period, score}]) drawn dashed, e.g. the
 * district's score, with its label.
 */
export function scoreChart(points, extra, extraLabel) {
  const W = 640, H = 240, left = 36, right = 28, top = 12, bottom = 36;
  const iw = W - left - right, ih = H - top - bottom;
  const periods = points.map((p) => p.period);
  if (extra) for (const e of extra) if (!periods.includes(e.period)) periods.push(e.period);
  periods.sort();
  const n = periods.length;
  const x = (period) => left + (n <= 1 ? iw / 2 : (periods.indexOf(period) * iw) / (n - 1));
  const y = (s) => top + ih - (Math.max(0, Math.min(100, s)) * ih) / 100;
  const parts = [];
  parts.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="得分走势 Score history">`);
  for (const [lo, hi, g] of BANDS) {
    parts.push(`<rect x="${left}" y="${y(hi)}" width="${iw}" height="${y(lo) - y(hi)}" class="band-${g}" opacity="0.25"/>`);
  }
  for (const v of [0, 40, 60, 75, 90, 100]) {
    parts.push(`<line x1="${left}" x2="${left + iw}" y1="${y(v)}" y2="${y(v)}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v)}" class="axis" text-anchor="end" dominant-baseline="middle">${v}</text>`);
  }
  // Period ticks: at most ~12 labels, counted back from the latest period.
  const step = Math.max(1, Math.ceil(n / 12));
  periods.forEach((p, i) => {
    if ((n - 1 - i) % step === 0) {
      parts.push(`<text x="${x(p)}" y="${H - bottom + 16}" class="axis" text-anchor="middle">${esc(p)}</text>`);
    }
  });
  const line = (pts) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.period).toFixed(1)},${y(p.score).toFixed(1)}`).join('');
  if (extra && extra.length) {
    parts.push(`<path d="${line(extra)}" class="line extra"/>`);
    if (extraLabel) {
      const last = extra[extra.length - 1];
      parts.push(`<text x="${x(last.period) - 4}" y="${y(last.score) - 8}" class="axis" text-anchor="end">${esc(extraLabel)}</text>`);
    }
  }
  if (points.length) parts.push(`<path d="${line(points)}" class="line"/>`);
  for (const p of points) {
    parts.push(
      `<circle cx="${x(p.period).toFixed(1)}" cy="${y(p.score).toFixed(1)}" r="4" class="dot dot-${esc(p.grade || 'none')}" data-period="${esc(p.period)}"><title>${esc(p.period)}: ${Number(p.score).toFixed(1)}</title></circle>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}
