// Matrix: the role × action grid of a system as the serving policies decide
// it (GET /v1/matrix/{system}), one scope type at a time; a cell opens its
// explanation — the rules that decided it and the vendor-document passages
// behind it (GET /v1/matrix/{system}/explain) — and a candidate bundle can
// be compared with the serving one (POST /v1/matrix/{system}/diff).

import { call, systems, path, query } from './api.js';
import { h, replace, field, select, kv, scopeText, route, errorBox } from './dom.js';

const SOURCES = { action: 'row (the action)', holder: 'column (the holder)', rule: 'rule' };

export async function render(main, params, ctx) {
  const catalog = await systems();
  const system = catalog.some((s) => s.id === params.system) ? params.system : catalog[0].id;
  const systemSel = select({ id: 'matrix-system', name: 'system' }, catalog.map((s) => [s.id, s.name + ' (' + s.id + ')']), system);
  const grid = h('div', { class: 'grid-wrap', id: 'matrix-grid-wrap' }, h('p', null, 'Deciding every cell…'));
  const panel = h('aside', { id: 'cell-panel', class: 'panel', 'aria-live': 'polite' });
  const candidate = h('section', { id: 'candidate', class: 'panel' });
  replace(main,
    h('h1', null, 'Matrix'),
    h('p', { class: 'lead' }, 'Each cell is a decision of the serving policies for a user who holds only that role (or permission), in an empty store. Select a cell for the rules that decided it and the vendor documents they cite.'),
    h('div', { class: 'controls' }, field('System', systemSel), h('span', { id: 'matrix-scope-field' })),
    h('div', { class: 'matrix-layout' }, grid, panel),
    candidate);
  systemSel.addEventListener('change', () => ctx.navigate(route('matrix', { system: systemSel.value })));

  const m = await call('GET', path('/v1/matrix', system), { signal: ctx.signal });
  const scope = m.scopes.includes(params.scope) ? params.scope : m.scopes[0];
  const scopeSel = select({ id: 'matrix-scope', name: 'scope' }, m.scopes, scope);
  scopeSel.addEventListener('change', () => ctx.navigate(route('matrix', { system, scope: scopeSel.value })));
  replace(document.getElementById('matrix-scope-field'), field('Scope type', scopeSel));

  const table = gridTable(m, scope, params);
  // A cell explains itself in the panel without rebuilding the grid (the
  // URL still names it, so the view can be linked and reloaded).
  table.addEventListener('click', (ev) => {
    const link = ev.target.closest('a');
    if (!link || !table.contains(link) || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    for (const a of table.querySelectorAll('a[data-current]')) {
      delete a.dataset.current;
      a.removeAttribute('aria-current');
      a.tabIndex = -1;
    }
    link.dataset.current = 'true';
    link.setAttribute('aria-current', 'true');
    link.tabIndex = 0;
    history.pushState(null, '', link.getAttribute('href'));
    const td = link.parentElement;
    explain(panel, system, td.dataset.holder, td.dataset.action, scope, ctx);
  });
  replace(grid, table,
    h('p', { class: 'meta' }, m.name, ', bundle ', h('code', { id: 'matrix-revision' }, m.bundle_revision), ' · ',
      'arrow keys move between cells; Enter explains one'),
    m.notes && m.notes.length ? h('ul', { class: 'notes' }, m.notes.map((n) => h('li', null, n))) : null);
  renderCandidate(candidate, m, scope, table, ctx);

  if (params.holder && params.action) {
    await explain(panel, system, params.holder, params.action, scope, ctx);
    const link = table.querySelector('a[data-current]');
    if (link && params.focus) link.focus();
  } else {
    replace(panel, h('h2', null, 'Why?'), h('p', null, 'Select a cell to see the rules that decide it and the vendor-document passages they cite.'));
  }
}

// gridTable is the matrix at one scope type: a row per action with a cell
// there, a column per holder. Decided cells are links (one tab stop for
// the grid: a roving tabindex, arrow keys move).
function gridTable(m, scope, params) {
  const cells = new Map();
  for (const c of m.cells) if (c.scope === scope) cells.set(c.role + '\u0000' + c.action, c);
  const actions = m.actions.filter((a) => m.holders.some((hd) => cells.has(hd.id + '\u0000' + a)));
  const holders = m.holders.filter((hd) => actions.some((a) => cells.has(hd.id + '\u0000' + a)));
  const table = h('table', { id: 'matrix-grid', class: 'matrix', 'data-system': m.system, 'data-scope': scope },
    h('caption', null, m.name + ': ' + (m.holder_kind === 'role' ? 'roles' : 'permissions held alone') + ' × actions at scope type ' + scope),
    h('thead', null, h('tr', null, h('th', { scope: 'col', class: 'corner' }, 'action'),
      holders.map((hd) => h('th', { scope: 'col', title: hd.name || hd.id, 'data-holder': hd.id },
        h('span', { class: 'holder-id' }, hd.id), hd.name && hd.name !== hd.id ? h('span', { class: 'holder-name' }, hd.name) : null,
        h('span', { class: 'held-at' }, 'held at ' + scopeText(hd.assigned_at)))))));
  const body = h('tbody');
  let first = null;
  let current = null;
  for (const a of actions) {
    const tr = h('tr', null, h('th', { scope: 'row', class: 'action' }, a));
    for (const hd of holders) {
      const c = cells.get(hd.id + '\u0000' + a);
      if (!c) {
        tr.append(h('td', { class: 'na' }, h('span', { 'aria-label': 'not checked' }, '·')));
        continue;
      }
      const link = h('a', {
        href: route('matrix', { system: m.system, scope, holder: c.role, action: c.action, focus: 1 }),
        tabindex: '-1', class: c.allow ? 'yes' : 'no',
        'aria-label': c.role + ', ' + c.action + ': ' + (c.allow ? 'allowed' : 'denied'),
      }, c.allow ? 'yes' : 'no');
      if (c.role === params.holder && c.action === params.action) {
        link.dataset.current = 'true';
        link.setAttribute('aria-current', 'true');
        current = link;
      }
      first = first || link;
      tr.append(h('td', { class: c.allow ? 'yes' : 'no', 'data-holder': c.role, 'data-action': c.action, 'data-scope': c.scope, 'data-allow': String(c.allow) }, link));
    }
    body.append(tr);
  }
  table.append(body);
  if (current || first) (current || first).tabIndex = 0;
  table.addEventListener('keydown', (ev) => moveFocus(table, ev));
  return table;
}

// moveFocus moves the grid's focus with the arrow keys, Home and End
// (with Ctrl: the grid's first and last cell). Left and right skip cells
// not checked; up and down go to the next row (every row has a decided
// cell), to the same column or the nearest decided cell to it.
function moveFocus(table, ev) {
  const link = ev.target.closest('a');
  if (!link || !table.contains(link)) return;
  const td = link.parentElement;
  const rows = [...table.tBodies[0].rows];
  const r = rows.indexOf(td.parentElement);
  const c = td.cellIndex;
  const lastCol = rows[0].cells.length - 1;
  const at = (ri, ci) => (rows[ri] && rows[ri].cells[ci] ? rows[ri].cells[ci].querySelector('a') : null);
  const along = (ri, from, step) => {
    for (let ci = from; ci >= 1 && ci <= lastCol; ci += step) if (at(ri, ci)) return at(ri, ci);
    return null;
  };
  const nearest = (ri) => {
    if (ri < 0 || ri >= rows.length) return null;
    for (let d = 0; d <= lastCol; d++) {
      const a = at(ri, c - d) || at(ri, c + d);
      if (a) return a;
    }
    return null;
  };
  let target = null;
  switch (ev.key) {
    case 'ArrowRight': target = along(r, c + 1, 1); break;
    case 'ArrowLeft': target = along(r, c - 1, -1); break;
    case 'ArrowDown': target = nearest(r + 1); break;
    case 'ArrowUp': target = nearest(r - 1); break;
    case 'Home': target = along(ev.ctrlKey ? 0 : r, 1, 1); break;
    case 'End': target = along(ev.ctrlKey ? rows.length - 1 : r, lastCol, -1); break;
    default: return;
  }
  ev.preventDefault();
  if (!target) return;
  link.tabIndex = -1;
  target.tabIndex = 0;
  target.focus();
}

let explaining = 0;

async function explain(panel, system, holder, action, scope, ctx) {
  const req = ++explaining; // a later click wins over an earlier answer
  delete panel.dataset.cell;
  replace(panel, h('p', null, 'Explaining…'));
  let x;
  try {
    x = await call('GET', path('/v1/matrix', system, 'explain') + query({ holder, action, scope }), { signal: ctx.signal });
  } catch (err) {
    if (req === explaining) replace(panel, errorBox(err));
    return;
  }
  if (req !== explaining) return;
  panel.dataset.cell = holder + ' ' + action + ' ' + scope;
  const c = x.cell;
  const withComment = x.rules.filter((r) => r.comment);
  replace(panel,
    h('h2', { id: 'cell-title' }, c.role, ' × ', c.action),
    h('p', { class: 'decision ' + (c.allow ? 'allow' : 'deny') },
      h('strong', { id: 'cell-verdict' }, c.allow ? 'ALLOW' : 'DENY'), ' at ', scopeText(c.resource),
      c.context ? [' with context ', JSON.stringify(c.context)] : null),
    c.missing && c.missing.length ? [h('h3', null, 'Missing'), h('ol', { class: 'missing' }, c.missing.map((mi) => h('li', null, kv(mi))))] : null,
    h('h3', null, 'Vendor documents'),
    x.citations.length ? h('ol', { class: 'citations', id: 'cell-citations' }, x.citations.map((ci) => h('li', { 'data-source': ci.source },
      h('span', { class: 'badge' }, SOURCES[ci.source] || ci.source), ' ',
      h('a', { href: route('document', { name: ci.document, line: ci.line, end: ci.end_line }), class: 'cite' },
        ci.document + ':' + ci.line + (ci.end_line !== ci.line ? '–' + ci.end_line : '')),
      ci.rule ? h('span', { class: 'cited-by' }, ' cited by ', h('code', null, ci.rule)) : null,
      h('blockquote', null, ci.text))))
      : h('p', null, 'No passage of the vendor documents was found for this cell.'),
    h('details', null, h('summary', null, 'Rules that held while deciding (' + x.rules.length + ', ' + withComment.length + ' commented)'),
      h('ol', { class: 'rules' }, x.rules.map((r) => h('li', null,
        h('code', null, r.file + ':' + r.row), ' ', h('code', null, r.package + '.' + r.name),
        r.comment ? h('pre', null, r.comment) : null)))));
}

// renderCandidate is the candidate-bundle form and, after a comparison,
// the cells that change, also marked in the grid.
function renderCandidate(section, m, scope, table, ctx) {
  const file = h('input', { type: 'file', id: 'candidate-file', accept: '.tar.gz,.tgz,application/gzip' });
  const button = h('button', { type: 'submit', id: 'candidate-compare' }, 'Compare');
  const out = h('div', { id: 'candidate-result', 'aria-live': 'polite' });
  const form = h('form', { id: 'candidate-form' },
    field('Candidate bundle (.tar.gz, e.g. from permatrix bundle build)', file), button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      replace(out, h('p', { role: 'alert' }, 'Choose a bundle file first.'));
      return;
    }
    // The server refuses a larger body (413), after the page would have
    // read it whole: a 2 GB file picked by mistake would freeze the tab.
    const chosen = file.files[0];
    const limit = m.candidate_upload_limit;
    if (Number.isSafeInteger(limit) && chosen.size > limit) {
      replace(out, h('p', { role: 'alert', id: 'candidate-too-large' }, chosen.name, ' is ', byteSize(chosen.size), ': more than the ',
        byteSize(limit), ' the server takes for a candidate bundle (its --body-limit). It was not read or sent.'));
      return;
    }
    replace(out, h('p', null, 'Compiling the candidate and deciding every cell…'));
    try {
      const raw = await chosen.arrayBuffer();
      const r = await call('POST', path('/v1/matrix', m.system, 'diff'), { raw, contentType: 'application/gzip', admin: true, signal: ctx.signal });
      const logged = h('section', { id: 'candidate-replay', 'aria-live': 'polite' }, h('h3', null, 'Logged decisions'), h('p', null, 'Replaying…'));
      replace(out, diffView(r.diff, scope), logged);
      markChanges(table, r.diff, scope);
      await replayLog(logged, raw, ctx);
    } catch (err) {
      replace(out, errorBox(err));
    }
  });
  replace(section, h('h2', null, 'Candidate bundle'),
    h('p', null, 'Which cells would change if another bundle served? The candidate is compiled beside the serving one and never activated (needs the admin token).'),
    form, out);
}

// byteSize is n bytes in words, exact: "900 bytes", "64 KiB (65,536
// bytes)", "3 GiB (3,221,225,472 bytes)" — rounded alone, a file one byte
// over the limit would read as the limit.
function byteSize(n) {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return n + (n === 1 ? ' byte' : ' bytes');
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return (Number.isInteger(v) ? String(v) : v.toFixed(1)) + ' ' + units[u] + ' (' + n.toLocaleString('en-US') + ' bytes)';
}

// replayLog re-decides the server's logged decisions under the candidate
// and the serving bundle (POST /v1/replay, as `permatrix replay --baseline`)
// and shows those the candidate alone would flip, by system and action.
async function replayLog(sec, raw, ctx) {
  let r;
  try {
    r = await call('POST', '/v1/replay', { raw, contentType: 'application/gzip', admin: true, signal: ctx.signal });
  } catch (err) {
    replace(sec, h('h3', null, 'Logged decisions'), errorBox(err));
    return;
  }
  const rep = r.report;
  const groups = rep.groups || [];
  replace(sec, h('h3', null, 'Logged decisions'),
    h('p', { id: 'candidate-replay-summary' }, String(rep.flips), ' of ', String(rep.decisions),
      ' logged decisions would flip (the server\'s last ', String(r.log.entries), ' log entries, re-decided under both bundles over the store as it is now)'),
    groups.length ? h('table', { class: 'list', id: 'candidate-replay-groups' },
      h('thead', null, h('tr', null, ['system', 'action', 'flips', 'allow → deny', 'deny → allow', 'now invalid', 'for example'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, groups.map((g) => h('tr', null,
        h('td', null, g.system), h('td', null, g.action), h('td', null, String(g.flips)), h('td', null, String(g.allow_to_deny)),
        h('td', null, String(g.deny_to_allow)), h('td', null, String(g.invalid)),
        h('td', null, (g.examples || []).slice(0, 3).map((e) => h('div', null, e.subject, ' on ', scopeText(e.resource), ': ', e.was ? 'allow' : 'deny', ' → ', e.now ? 'allow' : 'deny'))))))) : null);
}

function mark(v) {
  if (v === null || v === undefined) return '—';
  return v ? 'yes' : 'no';
}

function diffView(d, scope) {
  const parts = [h('p', { id: 'candidate-summary' }, String(d.changes.length), ' of ', String(d.cells), ' cells change (bundle ',
    h('code', null, d.base_revision), ' → ', h('code', null, d.candidate_revision), ')')];
  for (const [label, list] of [['roles added', d.added_holders], ['roles removed', d.removed_holders], ['actions added', d.added_actions], ['actions removed', d.removed_actions]]) {
    if (list.length) parts.push(h('p', null, label + ': ', list.join(', ')));
  }
  if (d.changes.length) {
    parts.push(h('table', { id: 'candidate-changes', class: 'list' },
      h('thead', null, h('tr', null, ['holder', 'action', 'scope', 'serving', 'candidate'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, d.changes.map((c) => h('tr', { class: c.scope === scope ? 'here' : null },
        h('td', null, c.role), h('td', null, c.action), h('td', null, c.scope), h('td', null, mark(c.was)), h('td', null, mark(c.now)))))));
  }
  return parts;
}

function markChanges(table, d, scope) {
  for (const td of table.querySelectorAll('td.changed')) {
    td.classList.remove('changed');
    for (const s of td.querySelectorAll('.change')) s.remove();
  }
  for (const c of d.changes) {
    if (c.scope !== scope) continue;
    for (const td of table.querySelectorAll('td[data-action]')) {
      if (td.dataset.holder === c.role && td.dataset.action === c.action) {
        td.classList.add('changed');
        td.append(h('span', { class: 'change' }, '→ ' + mark(c.now)));
      }
    }
  }
}
