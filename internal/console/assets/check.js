// Check: ask POST /v1/check with pickers from the catalog and show the
// decision with its reasons and what is missing.

import { call, systems } from './api.js';
import { h, replace, field, select, kv, scopeText, route, errorBox } from './dom.js';

// contextValue reads a context input: JSON where it parses as JSON (true,
// 3, ["a"]), else the text as a string.
function contextValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function render(main, params, ctx) {
  const catalog = await systems();
  const byId = Object.fromEntries(catalog.map((s) => [s.id, s]));
  // The URL's names are looked up as own keys: not constructor, __proto__….
  const system = Object.hasOwn(byId, params.system || '') ? params.system : catalog[0].id;
  const sys = byId[system];

  const systemSel = select({ id: 'check-system', name: 'system' }, catalog.map((s) => [s.id, s.name + ' (' + s.id + ')']), system);
  const actions = Object.keys(sys.actions).sort();
  const action = Object.hasOwn(sys.actions, params.action || '') ? params.action : actions[0];
  const actionSel = select({ id: 'check-action', name: 'action' }, actions, action);
  const scopes = sys.actions[action].scopes;
  const rtype = scopes.includes(params.resource_type) ? params.resource_type : scopes[0];
  const typeSel = select({ id: 'check-resource-type', name: 'resource_type' }, scopes, rtype);
  const idInput = h('input', { id: 'check-resource-id', name: 'resource_id', value: params.resource_id || '', autocomplete: 'off' });
  const subjectInput = h('input', { id: 'check-subject', name: 'subject', value: params.subject || '', required: true, autocomplete: 'off' });
  const groupsInput = h('input', { id: 'check-groups', name: 'groups', value: params.groups || '', autocomplete: 'off' });
  const contextInputs = {};
  const contextFields = Object.entries(sys.context_keys || {}).sort().map(([key, doc]) => {
    const input = h('input', { id: 'check-context-' + key, name: 'context.' + key, value: params['context.' + key] || '', autocomplete: 'off' });
    contextInputs[key] = input;
    return field('context.' + key, input, doc);
  });
  const result = h('section', { id: 'check-result', 'aria-live': 'polite' });

  // Changing the system or action changes the pickers: re-render from the URL.
  const repick = () => {
    const same = systemSel.value === system;
    ctx.navigate(route('check', {
      system: systemSel.value, action: same ? actionSel.value : '', subject: subjectInput.value, groups: groupsInput.value,
      resource_type: same ? typeSel.value : '', resource_id: idInput.value,
    }));
  };
  systemSel.addEventListener('change', repick);
  actionSel.addEventListener('change', repick);
  const syncType = () => { idInput.disabled = typeSel.value === 'service'; };
  typeSel.addEventListener('change', syncType);
  syncType();

  const form = h('form', { id: 'check-form', class: 'panel', novalidate: true },
    field('System', systemSel),
    field('Action', actionSel, sys.actions[action].description || ''),
    field('Resource type', typeSel),
    field('Resource id', idInput, 'not used at service scope'),
    field('Subject (user id)', subjectInput),
    field('Groups asserted by the identity provider', groupsInput, 'optional, comma-separated'),
    contextFields.length ? h('fieldset', null, h('legend', null, 'Context (keys this system documents)'), contextFields) : null,
    h('button', { type: 'submit', id: 'check-submit' }, 'Check'));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { subject: subjectInput.value, system, action: actionSel.value };
    if (typeSel.value !== 'service') body.resource = { type: typeSel.value, id: idInput.value };
    const groups = groupsInput.value.split(',').map((g) => g.trim()).filter(Boolean);
    if (groups.length) body.groups = groups;
    const context = {};
    for (const [k, input] of Object.entries(contextInputs)) {
      if (input.value !== '') context[k] = contextValue(input.value);
    }
    if (Object.keys(context).length) body.context = context;
    replace(result, h('p', null, 'Checking…'));
    try {
      const d = await call('POST', '/v1/check', { body, signal: ctx.signal });
      replace(result, decisionView(body, d));
    } catch (err) {
      replace(result, errorBox(err));
    }
  });

  replace(main,
    h('h1', null, 'Check'),
    h('p', { class: 'lead' }, 'May a user do an action on a resource? The server decides with the serving policies over the store (POST /v1/check).'),
    form, result);
}

function decisionView(check, d) {
  return h('div', { class: 'decision ' + (d.allow ? 'allow' : 'deny'), 'data-allow': String(d.allow) },
    h('p', { class: 'verdict' }, h('strong', { id: 'check-verdict' }, d.allow ? 'ALLOW' : 'DENY'), ' ',
      check.subject, ' → ', check.action, ' on ', check.resource ? scopeText(check.resource) : 'service',
      ' (', check.system, ')'),
    h('p', { class: 'meta' }, 'decision ', h('code', null, d.decision_id), ' at store revision ', String(d.revision)),
    d.reasons && d.reasons.length ? h('div', null, h('h2', null, 'Reasons'), h('ol', { class: 'reasons' }, d.reasons.map((r) => h('li', null, kv(r))))) : null,
    d.missing && d.missing.length ? h('div', null, h('h2', null, 'Missing'), h('ol', { class: 'missing' }, d.missing.map((m) => h('li', null, kv(m))))) : null,
    d.errors && d.errors.length ? h('div', null, h('h2', null, 'Errors'), h('ul', null, d.errors.map((e) => h('li', null, e)))) : null);
}
