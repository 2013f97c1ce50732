// Small SVG charts, built element by element (no library, no markup
// strings). Each has a text alternative (role="img" with aria-label) and
// a <title>.

import { h } from './dom.js';

const W = 320;
const H = 120;
const PAD = 24;

function svg(opts, ...children) {
  return h('svg:svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': opts.label, id: opts.id, class: 'chart-svg' },
    h('svg:title', null, opts.label), ...children);
}

function axis() {
  return [
    h('svg:line', { x1: PAD, y1: H - PAD, x2: W - 4, y2: H - PAD, class: 'axis' }),
    h('svg:line', { x1: PAD, y1: 4, x2: PAD, y2: H - PAD, class: 'axis' }),
  ];
}

function fmt(v) {
  if (v >= 1000) return (v / 1000).toFixed(1) + 'k';
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(1);
}

// lineChart draws values (oldest first) as a line over a zero-based axis.
export function lineChart(values, opts) {
  const max = Math.max(1, ...values);
  const n = Math.max(values.length, 2);
  const x = (i) => PAD + (i * (W - PAD - 6)) / (n - 1);
  const y = (v) => H - PAD - (v / max) * (H - PAD - 8);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  return svg(opts, ...axis(),
    h('svg:text', { x: 2, y: 12, class: 'tick' }, fmt(max)),
    h('svg:text', { x: 2, y: H - PAD, class: 'tick' }, '0'),
    values.length ? h('svg:polyline', { points, class: 'line' }) : null);
}

// barChart draws one bar per value, labelled underneath (every other label
// when crowded).
export function barChart(values, labels, opts) {
  const max = Math.max(1, ...values);
  const n = Math.max(values.length, 1);
  const bw = (W - PAD - 6) / n;
  const bars = values.map((v, i) => {
    const bh = (v / max) * (H - PAD - 8);
    return h('svg:rect', { x: (PAD + i * bw + 1).toFixed(1), y: (H - PAD - bh).toFixed(1), width: Math.max(bw - 2, 1).toFixed(1), height: bh.toFixed(1), class: 'bar' },
      h('svg:title', null, labels[i] + ': ' + v));
  });
  const ticks = labels.map((l, i) => (n > 6 && i % 2 ? null
    : h('svg:text', { x: (PAD + i * bw + bw / 2).toFixed(1), y: H - 8, class: 'tick', 'text-anchor': 'middle' }, l.replace(' ', ''))));
  return svg(opts, ...axis(), h('svg:text', { x: 2, y: 12, class: 'tick' }, fmt(max)), ...bars, ...ticks);
}

// splitBar draws allowed and denied as one bar split in two.
export function splitBar(allow, deny, opts) {
  const total = allow + deny;
  const label = `${allow} allowed, ${deny} denied`;
  const aw = total ? (allow / total) * (W - 8) : 0;
  return h('svg:svg', { viewBox: `0 0 ${W} 40`, width: W, height: 40, role: 'img', 'aria-label': label, id: opts.id, class: 'chart-svg' },
    h('svg:title', null, label),
    total ? [
      h('svg:rect', { x: 4, y: 8, width: aw.toFixed(1), height: 24, class: 'allow' }),
      h('svg:rect', { x: (4 + aw).toFixed(1), y: 8, width: (W - 8 - aw).toFixed(1), height: 24, class: 'deny' }),
    ] : h('svg:rect', { x: 4, y: 8, width: W - 8, height: 24, class: 'empty' }));
}
