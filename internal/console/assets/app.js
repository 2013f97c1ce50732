// The console's shell: the admin token bar, the navigation and a router over
// the URL fragment (#/page?param=…). Page state lives in the fragment, so a
// view can be linked and reloaded; the token never does.

import { call, ApiError, setToken, token } from './api.js';
import { h, replace, errorBox } from './dom.js';
import * as overview from './overview.js';
import * as matrix from './matrix.js';
import * as subject from './subject.js';
import * as check from './check.js';
import * as assignments from './assignments.js';
import * as documentPage from './document.js';

const pages = { overview, matrix, subject, check, assignments, document: documentPage };

let current = null; // { controller } of the page shown

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, q] = raw.split('?', 2);
  return { name: name || 'overview', params: Object.fromEntries(new URLSearchParams(q || '')) };
}

// navigate changes the fragment; render follows from hashchange.
export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  const { name, params } = parseHash();
  const page = Object.hasOwn(pages, name) ? pages[name] : null; // not an inherited name (#/constructor)
  const main = document.getElementById('main');
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = { controller };
  for (const a of document.querySelectorAll('nav a[data-page]')) {
    if (a.dataset.page === name || (name === 'document' && a.dataset.page === 'matrix')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.removeAttribute('data-ready');
  if (!page) {
    replace(main, h('h1', null, 'Not found'), h('p', null, 'There is no console page "', name, '".'));
    main.dataset.ready = 'true';
    return;
  }
  try {
    await page.render(main, params, { signal: controller.signal, navigate });
  } catch (err) {
    if (controller.signal.aborted) return;
    replace(main, h('h1', null, 'Error'), errorBox(err));
  }
  if (!controller.signal.aborted) main.dataset.ready = 'true';
}

function showTokenState(text) {
  const state = document.getElementById('token-state');
  state.textContent = text || (token() ? 'token set for this tab' : 'no token: checks and the matrix only');
}

function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    input.value = '';
    if (!t) return;
    // fetch refuses a header with a character beyond Latin-1 (and sends
    // Latin-1 as single bytes, never the UTF-8 the server compares): such
    // a token would fail every call it is kept for.
    if (!/^[\x20-\x7e]+$/.test(t)) {
      setToken('');
      showTokenState('token not kept: a browser can send only printable ASCII in a header');
      return;
    }
    setToken(t);
    // Ask the server whether it takes the token, with a read that needs it.
    try {
      await call('GET', '/v1/assignments?limit=1', { admin: true });
      showTokenState('token accepted');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setToken('');
        showTokenState('the server refused that token');
        return;
      }
      showTokenState('token set (not verified: ' + err.message + ')');
    }
    render();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    setToken('');
    showTokenState('token forgotten');
    render();
  });
  showTokenState();
}

document.getElementById('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  document.getElementById('main').focus();
});
setupToken();
window.addEventListener('hashchange', render);
render();
