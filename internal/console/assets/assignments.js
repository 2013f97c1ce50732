// Assignments: list (filters, paging) and change who holds what — assignments,
// group members, custom roles (Blue Prism) and projects (UiPath) — with the
// admin token, as the operator or on behalf of a user (the "actor" field:
// the vendor's delegation rules then decide, and a refusal shows the
// rule's message).

import { call, systems, path, query, token } from './api.js';
import { h, replace, field, select, scopeText, route, errorBox } from './dom.js';

const PAGE = 20;

export async function render(main, params, ctx) {
  const catalog = await systems();
  const byId = Object.fromEntries(catalog.map((s) => [s.id, s]));
  if (!token()) {
    replace(main, h('h1', null, 'Assignments'),
      h('p', { class: 'note', id: 'assignments-needs-token' }, 'Assignments are read and changed with the admin token: enter it at the top of the page.'));
    return;
  }
  const status = h('div', { id: 'assignments-status', role: 'status', 'aria-live': 'polite' });
  const actorInput = h('input', { id: 'actor', name: 'actor', value: sessionStorage.getItem('permatrix.actor') || '', autocomplete: 'off' });
  actorInput.addEventListener('change', () => sessionStorage.setItem('permatrix.actor', actorInput.value.trim()));
  const actor = () => actorInput.value.trim();

  // write sends a change with the actor (when one is given) and reports it.
  const write = async (what, method, url, body, after) => {
    const b = { ...(body || {}) };
    if (actor()) b.actor = actor();
    try {
      const r = await call(method, url, { body: Object.keys(b).length ? b : undefined, admin: true, signal: ctx.signal });
      replace(status, h('p', { class: 'ok', 'data-outcome': 'ok' }, what, ' — done', actor() ? ' as ' + actor() : '', ', store revision ', String(r.revision)));
      if (after) await after(r);
    } catch (err) {
      replace(status, h('div', { 'data-outcome': 'refused' }, h('p', null, what, ' — refused', actor() ? ' (acting as ' + actor() + ')' : ''), errorBox(err)));
    }
  };

  const listSec = h('section', { id: 'assignment-list', class: 'panel' });
  const refresh = () => list(listSec, params, catalog, write, ctx);

  replace(main,
    h('h1', null, 'Assignments'),
    h('p', { class: 'lead' }, 'Who holds what. Every change goes through the API and is judged by the vendor rules.'),
    h('div', { class: 'panel' }, field('Act as user (actor)', actorInput,
      'leave empty to write as the operator; a user id makes every change below on that user\'s behalf, judged by the delegation rules')),
    status,
    listSec,
    addAssignment(catalog, byId, write, refresh),
    members(params, write),
    customRoles(catalog, byId, write),
    projects(catalog, byId, write));
  await refresh();
}

// list is the filtered, paged list of assignments with a delete button each.
async function list(sec, params, catalog, write, ctx) {
  const subject = h('input', { id: 'filter-subject', name: 'subject', value: params.subject || '', placeholder: 'user:alice or group:eng', autocomplete: 'off' });
  const sys = select({ id: 'filter-system', name: 'system' }, [['', 'all'], ...catalog.map((s) => s.id)], params.system || '');
  const types = [...new Set(catalog.flatMap((s) => s.scope_types))].sort();
  const stype = select({ id: 'filter-scope-type', name: 'scope_type' }, [['', 'all'], ...types], params.scope_type || '');
  const sid = h('input', { id: 'filter-scope-id', name: 'scope_id', value: params.scope_id || '', autocomplete: 'off' });
  const form = h('form', { id: 'filter-form', class: 'controls' },
    field('Subject', subject), field('System', sys), field('Scope type', stype), field('Scope id', sid),
    h('button', { type: 'submit', id: 'filter-apply' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.navigate(route('assignments', { subject: subject.value.trim(), system: sys.value, scope_type: stype.value, scope_id: sid.value.trim() }));
  });
  // Paging: the cursors of the pages before this one are in the URL.
  const cursors = splitCursors(params.cursors);
  const cursor = cursors[cursors.length - 1] || '';
  const out = h('div');
  replace(sec, h('h2', null, 'List'), form, out);
  let r;
  try {
    r = await call('GET', '/v1/assignments' + query({ subject: params.subject, system: params.system, scope_type: params.scope_type, scope_id: params.scope_id, limit: PAGE, cursor }),
      { admin: true, signal: ctx.signal });
  } catch (err) {
    replace(out, errorBox(err));
    return;
  }
  const base = { subject: params.subject, system: params.system, scope_type: params.scope_type, scope_id: params.scope_id };
  const rows = r.assignments.map((a) => {
    const del = h('button', { type: 'button', class: 'danger', 'data-id': a.id, 'aria-label': 'delete assignment ' + a.id }, 'Delete');
    del.addEventListener('click', () => write('Delete assignment ' + a.id, 'DELETE', path('/v1/assignments', a.id), null,
      () => list(sec, params, catalog, write, ctx)));
    return h('tr', { 'data-id': a.id },
      h('td', null, h('code', null, a.id)), h('td', null, a.subject), h('td', null, a.system),
      h('td', null, a.role ? 'role ' + a.role : 'permission ' + a.permission), h('td', null, scopeText(a.scope)), h('td', null, del));
  });
  replace(out,
    rows.length ? h('table', { class: 'list', id: 'assignment-table' },
      h('thead', null, h('tr', null, ['id', 'subject', 'system', 'role / permission', 'scope', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows)) : h('p', { id: 'assignment-none' },
      // A page read by id stops after a budget: empty, it may have a next.
      r.next_cursor ? 'None on this page: the next page reads further.' : 'No assignments match.'),
    h('p', { class: 'pager' },
      cursors.length ? h('a', { href: route('assignments', { ...base, cursors: joinCursors(cursors.slice(0, -1)) }), id: 'page-prev' }, '← Previous') : null,
      ' ', h('span', null, 'page ' + (cursors.length + 1)), ' ',
      r.next_cursor ? h('a', { href: route('assignments', { ...base, cursors: joinCursors([...cursors, r.next_cursor]) }), id: 'page-next' }, 'Next →') : null));
}

// joinCursors and splitCursors keep a list of cursors in one URL parameter.
// A cursor is an assignment id, which may hold a comma: each is encoded.
function joinCursors(cursors) {
  return cursors.map(encodeURIComponent).join(',');
}

function splitCursors(s) {
  try {
    return (s || '').split(',').filter(Boolean).map(decodeURIComponent);
  } catch {
    return []; // an edited URL: the first page
  }
}

// addAssignment is the form that assigns a role or permission.
function addAssignment(catalog, byId, write, refresh) {
  const kind = select({ id: 'add-subject-kind', name: 'subject_kind' }, [['user', 'user'], ['group', 'group']], 'user');
  const sid = h('input', { id: 'add-subject-id', name: 'subject_id', required: true, autocomplete: 'off' });
  const sys = select({ id: 'add-system', name: 'system' }, catalog.map((s) => [s.id, s.id]), catalog[0].id);
  const grant = select({ id: 'add-grant-kind', name: 'grant_kind' }, [['role', 'role'], ['permission', 'permission']], 'role');
  const name = h('input', { id: 'add-name', name: 'name', list: 'add-name-options', required: true, autocomplete: 'off' });
  const options = h('datalist', { id: 'add-name-options' });
  const stype = h('select', { id: 'add-scope-type', name: 'scope_type' });
  const sidScope = h('input', { id: 'add-scope-id', name: 'scope_id', autocomplete: 'off' });
  const sync = () => {
    const s = byId[sys.value];
    const set = grant.value === 'role' ? s.roles : s.permissions;
    replace(options, Object.entries(set || {}).sort().map(([id, g]) => h('option', { value: id }, g.name || id)));
    const keep = stype.value;
    replace(stype, s.scope_types.map((t) => h('option', { value: t }, t)));
    if (s.scope_types.includes(keep)) stype.value = keep;
    sidScope.disabled = stype.value === 'service';
  };
  sys.addEventListener('change', sync);
  grant.addEventListener('change', sync);
  stype.addEventListener('change', () => { sidScope.disabled = stype.value === 'service'; });
  sync();
  const form = h('form', { id: 'add-form', class: 'panel' },
    h('h2', null, 'Add an assignment'),
    h('div', { class: 'controls' }, field('Subject kind', kind), field('Subject id', sid)),
    h('div', { class: 'controls' }, field('System', sys), field('Grant', grant),
      field('Role or permission id', name, 'the catalog\'s ids are suggested; Blue Prism roles are the custom roles below'), options),
    h('div', { class: 'controls' }, field('Scope type', stype), field('Scope id', sidScope)),
    h('button', { type: 'submit', id: 'add-submit' }, 'Assign'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { subject: kind.value + ':' + sid.value.trim(), system: sys.value,
      scope: stype.value === 'service' ? { type: 'service' } : { type: stype.value, id: sidScope.value.trim() } };
    body[grant.value] = name.value.trim();
    write('Assign ' + body[grant.value] + ' to ' + body.subject, 'POST', '/v1/assignments', body, refresh);
  });
  return form;
}

// MEMBERS_PAGE is how many members the list reads at a time.
const MEMBERS_PAGE = 100;

// members lists a group's members, a page at a time (a button reads the
// next page and adds it), and adds or removes one.
function members(params, write) {
  const group = h('input', { id: 'group-id', name: 'group', value: params.group || '', autocomplete: 'off' });
  const user = h('input', { id: 'member-user', name: 'user', autocomplete: 'off' });
  const out = h('div', { id: 'member-list' });
  let shown = 0; // a later listing replaces an earlier one still reading
  const show = async () => {
    const g = group.value.trim();
    if (!g) return;
    const listing = ++shown;
    const ul = h('ul');
    const more = h('button', { type: 'button', id: 'member-more', hidden: true }, 'More members');
    const item = (u) => {
      const rm = h('button', { type: 'button', class: 'danger', 'aria-label': 'remove ' + u + ' from ' + g }, 'Remove');
      rm.addEventListener('click', () => write('Remove ' + u + ' from ' + g, 'DELETE', path('/v1/groups', g, 'members', u), null, show));
      return h('li', null, h('span', { class: 'member' }, u), ' ', rm);
    };
    let cursor = '';
    const page = async () => {
      try {
        const r = await call('GET', path('/v1/groups', g, 'members') + query({ limit: MEMBERS_PAGE, cursor }), { admin: true });
        if (listing !== shown) return;
        ul.append(...r.members.map(item));
        cursor = r.next_cursor;
        more.hidden = !cursor;
        if (!ul.children.length) replace(out, h('p', null, 'No members.'));
      } catch (err) {
        if (listing === shown) replace(out, errorBox(err));
      }
    };
    more.addEventListener('click', async () => {
      more.disabled = true;
      await page();
      more.disabled = false;
      if (!more.hidden) more.focus();
    });
    replace(out, ul, more);
    await page();
  };
  const list = h('button', { type: 'button', id: 'member-show' }, 'Show members');
  list.addEventListener('click', show);
  const add = h('button', { type: 'submit', id: 'member-add' }, 'Add member');
  const form = h('form', { id: 'member-form', class: 'panel' },
    h('h2', null, 'Group members'),
    h('div', { class: 'controls' }, field('Group id', group), list),
    h('div', { class: 'controls' }, field('User id', user), add), out);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    write('Add ' + user.value.trim() + ' to ' + group.value.trim(), 'PUT', path('/v1/groups', group.value.trim(), 'members', user.value.trim()), null, show);
  });
  if (params.group) show();
  return form;
}

// customRoles edits the roles of systems whose roles are defined at run
// time (Blue Prism): a named set of the system's permissions.
function customRoles(catalog, byId, write) {
  const withRoles = catalog.filter((s) => s.custom_roles);
  if (!withRoles.length) return null;
  const sys = select({ id: 'role-system', name: 'system' }, withRoles.map((s) => s.id), withRoles[0].id);
  const name = h('input', { id: 'role-name', name: 'role', autocomplete: 'off' });
  const perms = h('select', { id: 'role-permissions', name: 'permissions', multiple: true, size: 8 });
  const existing = h('div', { id: 'role-existing' });
  const sync = async () => {
    replace(perms, Object.entries(byId[sys.value].permissions).sort().map(([id, g]) => h('option', { value: id }, id + (g.category ? ' (' + g.category + ')' : ''))));
    try {
      const r = await call('GET', path('/v1/data/store/roles', sys.value), { admin: true });
      const names = Object.keys(r.result || {}).sort();
      replace(existing, names.length ? ['Defined: ', names.join(', ')] : 'No roles defined yet.');
    } catch (err) {
      replace(existing, errorBox(err));
    }
  };
  sys.addEventListener('change', sync);
  sync();
  const load = h('button', { type: 'button', id: 'role-load' }, 'Load');
  load.addEventListener('click', async () => {
    try {
      const r = await call('GET', path('/v1/systems', sys.value, 'roles', name.value.trim()), { admin: true });
      for (const o of perms.options) o.selected = r.permissions.includes(o.value);
    } catch (err) {
      replace(existing, errorBox(err));
    }
  });
  const del = h('button', { type: 'button', id: 'role-delete', class: 'danger' }, 'Delete role');
  del.addEventListener('click', () => write('Delete role ' + name.value.trim(), 'DELETE', path('/v1/systems', sys.value, 'roles', name.value.trim()), null, sync));
  const form = h('form', { id: 'role-form', class: 'panel' },
    h('h2', null, 'Custom roles'),
    h('div', { class: 'controls' }, field('System', sys), field('Role', name), load), existing,
    field('Permissions', perms, 'select several with Ctrl or Shift'),
    h('button', { type: 'submit', id: 'role-save' }, 'Save role'), ' ', del);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const permissions = [...perms.selectedOptions].map((o) => o.value);
    write('Save role ' + name.value.trim(), 'PUT', path('/v1/systems', sys.value, 'roles', name.value.trim()), { permissions }, sync);
  });
  return form;
}

// projects registers and deletes projects (their creator may get a role on
// them: UiPath's Task Mining cloud gives project_admin).
function projects(catalog, byId, write) {
  const withProjects = catalog.filter((s) => s.scope_types.includes('project'));
  if (!withProjects.length) return null;
  const first = withProjects.find((s) => s.creator_role) || withProjects[0];
  const sys = select({ id: 'project-system', name: 'system' }, withProjects.map((s) => s.id), first.id);
  const id = h('input', { id: 'project-id', name: 'project', autocomplete: 'off' });
  const by = h('input', { id: 'project-created-by', name: 'created_by', autocomplete: 'off' });
  const kind = select({ id: 'project-kind', name: 'kind' }, [['', '(none)'], 'assisted', 'unassisted'], '');
  const existing = h('div', { id: 'project-existing' });
  const sync = async () => {
    try {
      const r = await call('GET', path('/v1/data/store/projects', sys.value), { admin: true });
      const ids = Object.keys(r.result || {}).sort();
      replace(existing, ids.length ? ['Registered: ', ids.join(', ')] : 'No projects registered yet.',
        byId[sys.value].creator_role ? h('p', { class: 'hint' }, 'The creator gets role ', byId[sys.value].creator_role, ' on the project.') : null);
    } catch (err) {
      replace(existing, errorBox(err));
    }
  };
  sys.addEventListener('change', sync);
  sync();
  // Deleting a project is refused (409, shown as the API words it) while
  // assignments are made on it, the creator's role among them.
  const del = h('button', { type: 'button', id: 'project-delete', class: 'danger' }, 'Delete project');
  del.addEventListener('click', () => write('Delete project ' + id.value.trim(), 'DELETE', path('/v1/systems', sys.value, 'projects', id.value.trim()), null, sync));
  const form = h('form', { id: 'project-form', class: 'panel' },
    h('h2', null, 'Projects'),
    h('div', { class: 'controls' }, field('System', sys), field('Project id', id), field('Created by (user id)', by), field('Kind', kind)),
    existing, h('button', { type: 'submit', id: 'project-save' }, 'Register project'), ' ', del);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { created_by: by.value.trim() };
    if (kind.value) body.kind = kind.value;
    write('Register project ' + id.value.trim(), 'PUT', path('/v1/systems', sys.value, 'projects', id.value.trim()), body, sync);
  });
  return form;
}
