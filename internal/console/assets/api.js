// The console's only way to the server: its JSON API (docs/api.yaml), from
// this origin. The admin token lives in sessionStorage (this tab only,
// gone when it closes) and is sent only in the Authorization header of the
// calls that need it — never in a URL, never in a cookie.

const TOKEN_KEY = 'permatrix.adminToken';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// ApiError is an answer other than 2xx: status, and the envelope's code
// and message ({"error": {"code", "message"}}).
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

// call sends one request. opts: body (JSON-encoded), raw (sent as is, with
// contentType), admin (send the admin token; refused here without one),
// signal (AbortSignal). Answers the decoded JSON (or text).
export async function call(method, path, opts = {}) {
  if (!path.startsWith('/') || path.startsWith('//')) throw new Error('not an API path: ' + path);
  // A browser resolves "." and ".." segments (also written %2e) before it
  // sends a request: an id that is one would name another resource.
  if (path.split('?', 1)[0].split('/').some((s) => ['.', '..'].includes(s.replace(/%2e/gi, '.')))) {
    throw new Error('refusing ' + method + ' ' + path + ': an id "." or ".." cannot be a URL path segment (the browser would resolve it to another path); use a client that sends the path as it is');
  }
  const headers = {};
  let body;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers['Content-Type'] = opts.contentType || 'application/octet-stream';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  if (opts.admin) {
    const t = token();
    if (!t) throw new ApiError(401, 'unauthorized', 'this needs the admin token: enter it at the top of the page');
    headers.Authorization = 'Bearer ' + t;
  }
  const resp = await fetch(path, {
    method, headers, body, signal: opts.signal,
    credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer',
  });
  const ctype = resp.headers.get('Content-Type') || '';
  const data = ctype.startsWith('application/json') ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const e = (data && typeof data === 'object' && data.error) || {};
    throw new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || resp.statusText || String(resp.status), e.details);
  }
  return data;
}

// path joins URL path segments, each escaped: ids never change the path's
// shape ("a/b" stays one segment; "." and ".." are refused by call).
export function path(...segments) {
  return segments.map((s, i) => (i === 0 ? s : encodeURIComponent(String(s)))).join('/');
}

// query builds ?k=v&… from the non-empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

let catalogPromise = null;

// systems is the catalog (GET /v1/systems), fetched once per page load.
export function systems() {
  if (!catalogPromise) {
    catalogPromise = call('GET', '/v1/systems').then((r) => r.systems).catch((e) => {
      catalogPromise = null;
      throw e;
    });
  }
  return catalogPromise;
}
