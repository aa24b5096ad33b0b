// The yujing API client: every call sends the bearer token kept in sessionStorage and
// turns problem+json errors into ApiError.

const KEY = 'yujing.token';

/** The stored token, or null. */
export function getToken() {
  return sessionStorage.getItem(KEY);
}

/** Stores (or, with a falsy value, forgets) the token. */
export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

/** An API error: HTTP status, the problem's code and its detail. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Called with the error whenever the API answers 401 (set by the app). */
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, v);
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** Calls `/api/v1{path}`; resolves to the parsed JSON body. */
export async function api(path, { method = 'GET', body, token } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token ?? getToken();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', `the server did not answer (${e.message})`);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, (json && json.code) || 'http_error', (json && json.detail) || res.statusText);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  return json;
}

/** GET shortcuts. */
export const get = (path, params) => api(`${path}${qs(params)}`);
export const post = (path, body) => api(path, { method: 'POST', body: body ?? {} });
