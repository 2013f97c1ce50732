// Overview: store and bundle revisions (GET /health?bundles) and, from the
// server's own Prometheus metrics (GET /metrics), the decision rate, the
// allow/deny split and the decision latency, drawn as small SVG charts.
// The page polls every few seconds while it is shown.

import { call } from './api.js';
import { h, replace, errorBox } from './dom.js';
import { lineChart, barChart, splitBar } from './charts.js';

const POLL_MS = 2000;
const HISTORY = 60; // samples kept for the rate chart

// parseMetrics reads Prometheus' text format into samples
// {name, labels, value}; lines it does not understand are skipped.
export function parseMetrics(text) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split('\n')) {
    if (!l || l.startsWith('#')) continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[3] || '').matchAll(label)) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    const value = Number(m[4]);
    if (!Number.isNaN(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

// decisionStats sums the decision metrics over systems.
function decisionStats(samples) {
  const s = { allow: 0, deny: 0, bySystem: {}, buckets: new Map(), count: 0, sum: 0, storeRevision: null };
  for (const x of samples) {
    switch (x.name) {
      case 'permatrix_decisions_total': {
        const k = x.labels.allow === 'true' ? 'allow' : 'deny';
        s[k] += x.value;
        const sys = (s.bySystem[x.labels.system] ||= { allow: 0, deny: 0 });
        sys[k] += x.value;
        break;
      }
      case 'permatrix_decision_duration_seconds_bucket':
        s.buckets.set(x.labels.le, (s.buckets.get(x.labels.le) || 0) + x.value);
        break;
      case 'permatrix_decision_duration_seconds_count': s.count += x.value; break;
      case 'permatrix_decision_duration_seconds_sum': s.sum += x.value; break;
      case 'permatrix_store_revision': s.storeRevision = x.value; break;
      default:
    }
  }
  return s;
}

// quantile estimates a quantile from cumulative buckets, as Prometheus'
// histogram_quantile does (linear within the bucket).
function quantile(q, buckets) {
  const bs = [...buckets.entries()].map(([le, c]) => [le === '+Inf' ? Infinity : Number(le), c]).sort((a, b) => a[0] - b[0]);
  if (!bs.length) return null;
  const total = bs[bs.length - 1][1];
  if (total === 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const [le, c] of bs) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevC) / Math.max(c - prevC, 1e-12));
    }
    prevLe = le;
    prevC = c;
  }
  return prevLe;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  return seconds < 0.001 ? (seconds * 1e6).toFixed(0) + ' µs' : (seconds * 1e3).toFixed(2) + ' ms';
}

export async function render(main, params, ctx) {
  const healthSec = h('section', { id: 'overview-health', class: 'panel' });
  const rateSec = h('section', { id: 'overview-rate', class: 'panel chart' });
  const splitSec = h('section', { id: 'overview-split', class: 'panel chart' });
  const latencySec = h('section', { id: 'overview-latency', class: 'panel chart' });
  replace(main, h('h1', null, 'Overview'),
    h('p', { class: 'lead' }, 'The server right now: revisions from /health?bundles, decisions from its own /metrics (refreshed every 2 s).'),
    healthSec, h('div', { class: 'charts' }, rateSec, splitSec, latencySec));

  const history = [];
  let prev = null;
  const tick = async () => {
    try {
      const health = await healthOf(ctx);
      replace(healthSec, healthView(health));
    } catch (err) {
      replace(healthSec, h('h2', null, 'Health'), errorBox(err));
    }
    let text;
    try {
      text = await call('GET', '/metrics', { signal: ctx.signal });
    } catch (err) {
      replace(rateSec, h('h2', null, 'Decisions'), errorBox(err));
      return;
    }
    const now = performance.now();
    const s = decisionStats(parseMetrics(text));
    const total = s.allow + s.deny;
    if (prev) {
      const dt = (now - prev.t) / 1000;
      history.push(Math.max(0, (total - prev.total) / dt));
      if (history.length > HISTORY) history.shift();
    }
    prev = { t: now, total };
    replace(rateSec, h('h2', null, 'Decision rate'),
      h('p', { class: 'figure', id: 'overview-rate-now' }, history.length ? history[history.length - 1].toFixed(1) + ' /s' : 'measuring…'),
      lineChart(history, { label: 'decisions per second, last ' + HISTORY * (POLL_MS / 1000) + ' s', id: 'chart-rate' }));
    replace(splitSec, h('h2', null, 'Allow / deny'),
      h('p', { class: 'figure', id: 'overview-split-figures' }, String(s.allow), ' allowed · ', String(s.deny), ' denied'),
      splitBar(s.allow, s.deny, { id: 'chart-split' }),
      Object.keys(s.bySystem).length ? h('table', { class: 'list', id: 'overview-by-system' },
        h('thead', null, h('tr', null, ['system', 'allowed', 'denied'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, Object.entries(s.bySystem).sort().map(([sys, v]) => h('tr', null, h('td', null, sys), h('td', null, String(v.allow)), h('td', null, String(v.deny))))))
        : null);
    const les = [...s.buckets.keys()].filter((le) => le !== '+Inf').sort((a, b) => Number(a) - Number(b));
    const perBucket = les.map((le, i) => s.buckets.get(le) - (i ? s.buckets.get(les[i - 1]) : 0));
    replace(latencySec, h('h2', null, 'Decision latency'),
      h('p', { class: 'figure', id: 'overview-latency-figures' },
        'p50 ', ms(quantile(0.5, s.buckets)), ' · p95 ', ms(quantile(0.95, s.buckets)), ' · p99 ', ms(quantile(0.99, s.buckets)),
        ' · mean ', ms(s.count ? s.sum / s.count : null)),
      barChart(perBucket, les.map((le) => '≤' + ms(Number(le))), { label: 'decisions per latency bucket', id: 'chart-latency' }));
    main.dataset.polls = String(Number(main.dataset.polls || 0) + 1);
  };
  // The next poll is due POLL_MS after the last one ended, not on a fixed
  // beat: a /health or /metrics slower than POLL_MS would otherwise start
  // polls that overlap and pile up, and a rate would be counted from a
  // sample older than the one shown.
  let timer = null;
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));
  const next = () => {
    if (ctx.signal.aborted) return;
    timer = setTimeout(async () => {
      try {
        await tick();
      } finally {
        next();
      }
    }, POLL_MS);
  };
  await tick();
  next();
}

// healthOf reads /health?bundles, which answers 503 (with the same body)
// when not ready: that is shown, not thrown.
async function healthOf(ctx) {
  const resp = await fetch('/health?bundles', { cache: 'no-store', credentials: 'omit', signal: ctx.signal });
  const body = await resp.json();
  return { status: resp.status, body };
}

function healthView({ status, body }) {
  const b = (body.bundles && body.bundles.permatrix) || {};
  const st = body.store || {};
  const rows = [
    ['status', body.status + ' (HTTP ' + status + ')'],
    ['store revision', String(st.revision ?? '—')],
    ['store ready', String(st.ready)],
    ['bundle revision', b.revision || '—'],
    ['bundle loaded at', b.loaded_at || '—'],
  ];
  if (body.store_error) rows.push(['store error', body.store_error]);
  if (b.last_error) rows.push(['last bundle error', b.last_error + ' (' + b.last_error_at + ')']);
  return [h('h2', null, 'Health'), h('dl', { class: 'kv', id: 'overview-health-list' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', { 'data-key': k }, v)]))];
}
