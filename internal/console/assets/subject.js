// Subject: a user's groups, assignments (its own and its groups') and
// effective permissions with their reasons, filterable by system and scope.
// Groups and assignments are store reads (admin token); the effective
// permissions are what any client may ask (GET /v1/subjects/{user}/permissions).

import { call, systems, path, query, token } from './api.js';
import { h, replace, field, select, kv, scopeText, route, errorBox } from './dom.js';

export async function render(main, params, ctx) {
  const catalog = await systems();
  const user = params.user || '';
  const system = catalog.some((s) => s.id === params.system) ? params.system : '';
  const scopeTypes = [...new Set(catalog.flatMap((s) => s.scope_types))].sort();
  const scopeType = scopeTypes.includes(params.scope_type) ? params.scope_type : 'service';

  const userInput = h('input', { id: 'subject-user', name: 'user', value: user, required: true, autocomplete: 'off' });
  const systemSel = select({ id: 'subject-system', name: 'system' }, [['', 'all systems'], ...catalog.map((s) => [s.id, s.id])], system);
  const typeSel = select({ id: 'subject-scope-type', name: 'scope_type' }, scopeTypes, scopeType);
  const idInput = h('input', { id: 'subject-scope-id', name: 'scope_id', value: params.scope_id || '', autocomplete: 'off' });
  const form = h('form', { id: 'subject-form', class: 'panel controls' },
    field('User id', userInput), field('System', systemSel), field('Scope type', typeSel),
    field('Scope id', idInput, 'a project, bucket, group… id; not used at service scope'),
    h('button', { type: 'submit', id: 'subject-show' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.navigate(route('subject', { user: userInput.value, system: systemSel.value, scope_type: typeSel.value, scope_id: typeSel.value === 'service' ? '' : idInput.value }));
  });
  const groupsSec = h('section', { id: 'subject-groups' });
  const assignSec = h('section', { id: 'subject-assignments' });
  const permSec = h('section', { id: 'subject-permissions' });
  replace(main, h('h1', null, 'Subject'),
    h('p', { class: 'lead' }, 'What a user holds and what it may do, with the reasons.'),
    form, groupsSec, assignSec, permSec);
  if (!user) return;

  const scope = scopeType === 'service' ? null : { type: scopeType, id: params.scope_id || '' };
  await Promise.all([
    groupsAndAssignments(groupsSec, assignSec, user, system, scope, ctx),
    permissions(permSec, user, system, scope, ctx),
  ]);
}

// MAX_ROWS bounds the assignments the page reads and shows.
const MAX_ROWS = 5000;

async function groupsAndAssignments(groupsSec, assignSec, user, system, scope, ctx) {
  if (!token()) {
    const note = h('p', { class: 'note' }, 'Groups and assignments are read from the store: enter the admin token at the top of the page.');
    replace(groupsSec, h('h2', null, 'Groups'), note);
    replace(assignSec, h('h2', null, 'Assignments'), note.cloneNode(true));
    return;
  }
  let groups = [];
  try {
    // The user's memberships, as the policies see them (data.store.memberships).
    const r = await call('GET', path('/v1/data/store/memberships', user), { admin: true, signal: ctx.signal });
    groups = Object.keys(r.result || {}).sort();
    replace(groupsSec, h('h2', null, 'Groups'),
      groups.length ? h('ul', { id: 'subject-group-list' }, groups.map((g) => h('li', null,
        h('a', { href: route('assignments', { subject: 'group:' + g, group: g }) }, g))))
        : h('p', null, 'No stored group memberships.'));
  } catch (err) {
    replace(groupsSec, h('h2', null, 'Groups'), errorBox(err));
  }
  const filter = { system, scope_type: scope ? scope.type : '', scope_id: scope ? scope.id : '' };
  const rows = [];
  let cut = false;
  try {
    // One listing: the user's assignments and those of every group the
    // user is stored in (with_groups), by id, a page of 1,000 at a time —
    // not a listing per group.
    let cursor = '';
    do {
      const r = await call('GET', '/v1/assignments' + query({ subject: 'user:' + user, with_groups: 'true', ...filter, limit: 1000, cursor }), { admin: true, signal: ctx.signal });
      rows.push(...r.assignments);
      cursor = r.next_cursor;
    } while (cursor && rows.length < MAX_ROWS);
    // At the bound: the rest is not read, and the table says it is not
    // the whole.
    if (cursor || rows.length > MAX_ROWS) {
      cut = true;
      rows.length = Math.min(rows.length, MAX_ROWS);
    }
    replace(assignSec, h('h2', null, 'Assignments'),
      cut ? h('p', { class: 'note', id: 'subject-assignments-cut' }, 'Only the first ' + MAX_ROWS + ' assignments read are shown; there are more. The ',
        h('a', { href: route('assignments', { subject: 'user:' + user }) }, 'Assignments page'), ' lists the user\'s own a page at a time, and each group\'s from the groups above.') : null,
      rows.length ? assignmentTable(rows, user) : h('p', null, 'None.'));
  } catch (err) {
    replace(assignSec, h('h2', null, 'Assignments'), errorBox(err));
  }
}

function assignmentTable(rows, user) {
  return h('table', { class: 'list', id: 'subject-assignment-table' },
    h('thead', null, h('tr', null, ['id', 'held', 'system', 'role / permission', 'scope'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, rows.map((a) => h('tr', null,
      h('td', null, h('code', null, a.id)),
      h('td', null, a.subject === 'user:' + user ? 'directly' : 'via ' + a.subject),
      h('td', null, a.system),
      h('td', null, a.role ? 'role ' + a.role : 'permission ' + a.permission),
      h('td', null, scopeText(a.scope))))));
}

async function permissions(sec, user, system, scope, ctx) {
  try {
    const r = await call('GET', path('/v1/subjects', user, 'permissions') +
      query({ system, resource_type: scope ? scope.type : '', resource_id: scope ? scope.id : '' }), { signal: ctx.signal });
    replace(sec, h('h2', null, 'Effective permissions'),
      h('p', { class: 'meta' }, 'at ', scopeText(r.scope), ', store revision ', String(r.revision)),
      r.permissions.length ? h('table', { class: 'list', id: 'subject-permission-table' },
        h('thead', null, h('tr', null, ['system', 'action', 'reasons'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, r.permissions.map((p) => h('tr', null,
          h('td', null, p.system), h('td', null, p.action),
          h('td', null, h('ol', { class: 'reasons' }, (p.reasons || []).map((re) => h('li', null, reasonText(re)))))))))
        : h('p', null, 'Nothing is allowed there.'));
  } catch (err) {
    replace(sec, h('h2', null, 'Effective permissions'), errorBox(err));
  }
}

// reasonText is a reason in words: which grant, where, through whom.
function reasonText(r) {
  const what = r.role ? 'role ' + r.role : r.permission ? 'permission ' + r.permission : r.kind;
  const parts = [what];
  if (r.system) parts.push('in ' + r.system);
  if (r.scope) parts.push('at ' + scopeText(r.scope));
  if (r.via) parts.push(String(r.via).startsWith('group:') ? 'via ' + r.via : 'held by ' + r.via);
  if (r.assignment) parts.push('(assignment ' + r.assignment + ')');
  const extra = Object.fromEntries(Object.entries(r).filter(([k]) => !['kind', 'role', 'permission', 'system', 'scope', 'via', 'assignment'].includes(k)));
  return [parts.join(' '), Object.keys(extra).length ? kv(extra) : null];
}
