// Where the router is (relative to this page, so an Ingress path prefix just works) and the
// key the user gave, if the router wants one.

const KEY = "hearth.apiKey";

/** The page's own folder: `/hearth` (no slash) still resolves `v1/...` under `/hearth/`. */
export function baseUrl(location = window.location) {
  const path = location.pathname.endsWith("/") ? location.pathname : `${location.pathname}/`;
  return new URL(path, location.origin);
}

export function url(path) {
  return new URL(path, baseUrl()).toString();
}

export function apiKey() {
  return localStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** POST a dashboard action; resolves to { ok, message }. */
export async function act(path) {
  try {
    const response = await fetch(url(path), { method: "POST", headers: authHeaders() });
    const body = await response.json().catch(() => ({}));
    if (response.ok) return { ok: true, body };
    const message = (body.error && body.error.message) || `${response.status} ${response.statusText}`;
    return { ok: false, status: response.status, message };
  } catch (exc) {
    return { ok: false, status: null, message: `Cannot reach the router: ${exc.message || exc}` };
  }
}
