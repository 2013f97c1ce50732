// Document: a vendor document (GET /v1/documents/{name}) with numbered
// lines, the cited ones marked and focused.

import { call, path } from './api.js';
import { h, replace, route } from './dom.js';

export async function render(main, params, ctx) {
  const list = await call('GET', '/v1/documents', { signal: ctx.signal });
  const name = list.documents.includes(params.name) ? params.name : list.documents[0];
  const text = await call('GET', path('/v1/documents', name), { signal: ctx.signal });
  const first = parseInt(params.line, 10) || 0;
  const last = Math.max(first, parseInt(params.end, 10) || first);
  const lines = text.replace(/\n$/, '').split('\n');
  const ol = h('ol', { class: 'doc', id: 'document-lines' });
  let focus = null;
  lines.forEach((line, i) => {
    const n = i + 1;
    const cited = n >= first && n <= last;
    const li = h('li', { id: 'L' + n, class: cited ? 'cited' : null, 'data-line': String(n) }, line || '\u00a0');
    if (cited && !focus) {
      li.tabIndex = -1;
      focus = li;
    }
    ol.append(li);
  });
  const back = h('button', { type: 'button', id: 'document-back' }, 'Back');
  back.addEventListener('click', () => history.back());
  replace(main,
    h('h1', null, 'Vendor document'),
    h('p', { class: 'lead' }, h('code', { id: 'document-name' }, name), ', as published (shared/vendor-docs)',
      first ? ['; cited: line ', String(first), last !== first ? '–' + last : ''] : null, '. ', back),
    h('nav', { 'aria-label': 'Documents', class: 'docs' }, h('ul', null, list.documents.map((d) => h('li', null,
      h('a', { href: route('document', { name: d }), 'aria-current': d === name ? 'page' : null }, d))))),
    ol);
  if (focus) {
    focus.scrollIntoView({ block: 'center' });
    focus.focus({ preventScroll: true });
  }
}
