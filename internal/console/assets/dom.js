// DOM building for the console. Every string that reaches the page goes in
// as a text node or an attribute value, never as markup: there is no
// innerHTML anywhere (the Content-Security-Policy's Trusted Types would
// refuse it anyway), so an id or a message from the server is shown as
// the characters it is.

import { ApiError } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';

// h builds an element. props: attributes (false/null/undefined left out,
// true as an empty attribute), on<event> listeners, and href, which must be
// a console link (#…) or a path on this origin. Children: nodes, strings
// (as text), numbers, arrays of those, null/undefined/false skipped.
export function h(tag, props, ...children) {
  const el = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'href') {
      el.setAttribute('href', safeHref(v));
    } else if (k === 'title' || k === 'aria-label') {
      el.setAttribute(k, visible(String(v))); // read out or shown: text
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children to el (see h).
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(visible(String(c))));
  }
  return el;
}

// Characters that do not show as what they are, shown by code point
// ([U+XXXX]) wherever the pages show text, so that two different ids never
// read the same:
//  - HIDDEN: Unicode's default-ignorable code points, which render as
//    nothing or act on the text around them — the bidirectional controls
//    (U+202E … would reorder "evil\u202etxet" to read "eviltext"),
//    zero-width characters (U+200B …), the soft hyphen, the word joiner,
//    U+FEFF, variation selectors, tag characters (U+E0000 …) —, the C1
//    controls, the line and paragraph separators, and the spaces that
//    look like U+0020 but are not.
//  - in a word (a run of letters, marks and digits) that mixes Latin,
//    Greek and Cyrillic letters, its Greek and Cyrillic letters, which
//    may look like Latin ones ("\u0430lice" with a Cyrillic а reads
//    "alice"). A word in one script is left as it is: a Cyrillic name is
//    not a spoof, and "user:" before it is another word.
const HIDDEN = /[\p{Default_Ignorable_Code_Point}\u0080-\u009f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
const WORD_OR_HIDDEN = new RegExp('[\\p{L}\\p{M}\\p{N}\\p{Default_Ignorable_Code_Point}]+|' + HIDDEN.source, 'gu');
const SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Greek}/u, /\p{Script=Cyrillic}/u];
const LOOKALIKE = /[\p{Script=Greek}\p{Script=Cyrillic}]/u;
const PLAIN = /^[\t\n\r\x20-\x7e]*$/;

// rewrite is s with the characters above written as [U+XXXX], and those
// code points.
function rewrite(s) {
  const codes = [];
  if (PLAIN.test(s)) return { text: s, codes };
  const text = s.replace(WORD_OR_HIDDEN, (w) => {
    const mixed = SCRIPTS.filter((re) => re.test(w)).length > 1;
    let out = '';
    for (const c of w) {
      if (HIDDEN.test(c) || (mixed && LOOKALIKE.test(c))) {
        const code = 'U+' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
        codes.push(code);
        out += '[' + code + ']';
      } else {
        out += c;
      }
    }
    return out;
  });
  return { text, codes };
}

// visible is s as the pages show it: the characters above written as
// [U+XXXX].
export function visible(s) {
  return rewrite(s).text;
}

// disguised lists the code points visible writes out in s ("U+202E"),
// each once: empty when s shows as what it is.
export function disguised(s) {
  return [...new Set(rewrite(s).codes)];
}

// replace empties el and adds children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// safeHref keeps links inside the console or this origin: a fragment, or
// an absolute path (not a protocol-relative //host).
export function safeHref(v) {
  const s = String(v);
  if (s.startsWith('#') || (s.startsWith('/') && !s.startsWith('//'))) return s;
  throw new Error('refusing a link that leaves the console: ' + s);
}

// link builds a console route: #/page?k=v with every value encoded.
export function route(page, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return '#/' + page + (s ? '?' + s : '');
}

// field is a labelled control: <label for=id>text</label> control. A text
// input also gets a warning (see typedWarning).
export function field(label, control, hint) {
  const id = control.id || (control.id = uid(label));
  const hintEl = hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null;
  const warnEl = control.localName === 'input' && control.type === 'text' ? typedWarning(control) : null;
  const described = [hintEl, warnEl].filter(Boolean).map((el) => el.id).join(' ');
  if (described) control.setAttribute('aria-describedby', described);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, warnEl);
}

// typedWarning is the warning beside a text input whose value holds
// characters that do not show as what they are (visible): the field shows
// them as they act — a pasted "u\u202eevil" reads "ulive" — so the warning
// names them and shows the value as the rest of the page would. The value
// is sent as it is: an operator must be able to look up, and remove, a
// stored id that holds them.
function typedWarning(input) {
  const warn = h('span', { class: 'warn', id: input.id + '-warn', role: 'status', hidden: true });
  const sync = () => {
    const codes = disguised(input.value);
    warn.hidden = !codes.length;
    if (codes.length) {
      // The field's value, character by character (the Assignments page
      // sends it trimmed: a space at an end named here is not sent).
      replace(warn, 'Holds ', codes.join(', '), ', which do not show here as what they are: character by character, it is ',
        h('code', null, input.value), '.');
    } else {
      warn.replaceChildren();
    }
  };
  input.addEventListener('input', sync);
  input.addEventListener('change', sync);
  sync();
  return warn;
}

let seq = 0;
// uid is a document-unique id derived from a label.
export function uid(label) {
  seq += 1;
  return 'f' + seq + '-' + String(label).toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 24);
}

// select builds a <select> of options [value, label] (or plain values).
export function select(props, options, selected) {
  const el = h('select', props);
  for (const o of options) {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    const opt = h('option', { value }, label);
    if (value === selected) opt.selected = true;
    el.append(opt);
  }
  return el;
}

// json renders any JSON value as text (objects as compact JSON).
export function json(v) {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

// kv renders an object (a reason, a missing item) as a definition list.
export function kv(obj) {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of Object.entries(obj || {})) {
    dl.append(h('dt', null, k), h('dd', null, json(v)));
  }
  return dl;
}

// scopeText is a scope as text: "service" or "project:p1".
export function scopeText(s) {
  if (!s || !s.type) return '';
  return s.id !== undefined && s.id !== '' ? s.type + ':' + s.id : s.type;
}

// errorBox shows an error: for an API error its status, code and the
// server's message (and details), as text.
export function errorBox(err) {
  if (err instanceof ApiError) {
    return h('div', { class: 'error', role: 'alert', 'data-status': String(err.status) },
      h('strong', null, err.status + ' ' + err.code), ': ', h('span', { class: 'message' }, err.message),
      err.details && err.details.length ? h('ul', null, err.details.map((x) => h('li', null, x))) : null);
  }
  return h('div', { class: 'error', role: 'alert' }, h('span', { class: 'message' }, String(err && err.message ? err.message : err)));
}
