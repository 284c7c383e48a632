// The API client and the session. The access token lives in memory only; the refresh token in
// sessionStorage (this tab, survives a reload), never in a URL or a cookie. The access token is
// refreshed before it expires, and once more on a 401 (a clock skew or a sleeping laptop).

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || '';
  }
}

const REFRESH_KEY = 'vigil.refresh';

export const session = {
  access: null,
  me: null, // {id, email, name, role}
  timer: 0,
  refreshing: null,
  onLogout: () => {},
  requests: 0, // API requests made since the page loaded (the test and the footer read it)
};

function store(tokens) {
  session.access = tokens.access_token;
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  clearTimeout(session.timer);
  // Refresh at 80 % of the lifetime, at least 5 s out: well before the server refuses it.
  const ms = Math.max(5, (tokens.expires_in || 60) * 0.8) * 1000;
  session.timer = setTimeout(() => refresh().catch(() => session.onLogout('Your session expired: please log in again.')), ms);
}

export async function login(email, password) {
  const t = await request('POST', '/auth/login', { body: { email, password }, anonymous: true });
  store(t);
  session.me = await request('GET', '/users/me');
  return session.me;
}

/** resume restores a session from the tab's refresh token after a reload. */
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return null;
  try {
    await refresh();
    session.me = await request('GET', '/users/me');
    return session.me;
  } catch {
    forget();
    return null;
  }
}

export function refresh() {
  // One refresh at a time: a refresh token works once, so two racing would end the session.
  if (!session.refreshing) {
    const rt = sessionStorage.getItem(REFRESH_KEY);
    session.refreshing = request('POST', '/auth/refresh', { body: { refresh_token: rt }, anonymous: true })
      .then(store)
      .finally(() => { session.refreshing = null; });
  }
  return session.refreshing;
}

function forget() {
  clearTimeout(session.timer);
  session.access = null;
  session.me = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

export async function logout() {
  const rt = sessionStorage.getItem(REFRESH_KEY);
  try {
    if (rt) await request('POST', '/auth/logout', { body: { refresh_token: rt }, anonymous: true });
  } finally {
    forget();
  }
}

/** query builds ?a=1&b=2 from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

/** request calls the API and answers the decoded JSON (null for 204), or throws ApiError. */
export async function request(method, path, { body, params, anonymous, retried, form } = {}) {
  const headers = { Accept: 'application/json' };
  if (!anonymous && session.access) headers.Authorization = 'Bearer ' + session.access;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  session.requests++;
  let resp;
  try {
    resp = await fetch(path + query(params), { method, headers, body: payload, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { title: 'Network error', detail: 'The server did not answer: ' + e.message });
  }
  if (resp.status === 401 && !anonymous && !retried && sessionStorage.getItem(REFRESH_KEY)) {
    try {
      await refresh();
    } catch {
      forget();
      session.onLogout('Your session expired: please log in again.');
      throw new ApiError(401, { title: 'Unauthorized', detail: 'Your session expired.' });
    }
    return request(method, path, { body, params, anonymous, form, retried: true });
  }
  if (resp.status === 204) return null;
  const ctype = resp.headers.get('Content-Type') || '';
  const data = ctype.includes('json') ? await resp.json().catch(() => ({})) : {};
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    if (resp.status === 429) {
      const after = Number(resp.headers.get('Retry-After')) || 0;
      err.retryAfter = after;
      err.detail = (err.detail || 'Too many requests') + (after ? ` (try again in ${after} s)` : '');
      err.message = err.detail;
    }
    throw err;
  }
  return data;
}

export const get = (path, params) => request('GET', path, { params });
export const post = (path, body) => request('POST', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });
export const del = (path) => request('DELETE', path);

/**
 * upload sends files as one multipart request (one request counts once against the upload rate
 * limit) and reports progress per file: the body carries the files in order, so the bytes sent
 * so far say how far each file is.
 */
export function upload(files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append('files', f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/upload');
    xhr.setRequestHeader('Authorization', 'Bearer ' + session.access);
    xhr.setRequestHeader('Accept', 'application/json');
    const total = files.reduce((s, f) => s + f.size, 0) || 1;
    xhr.upload.onprogress = (e) => {
      // Multipart framing adds a little to each part: scale the sent bytes onto the file sizes.
      const sent = e.lengthComputable ? (e.loaded / e.total) * total : 0;
      let offset = 0;
      onProgress(files.map((f) => {
        const p = f.size ? Math.min(1, Math.max(0, (sent - offset) / f.size)) : 1;
        offset += f.size;
        return p;
      }));
    };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 202) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError(0, { title: 'Network error', detail: 'The upload was interrupted.' }));
    session.requests++;
    xhr.send(form);
  });
}

/**
 * fetchAuthed GETs a path with the session's token (refreshed once on a 401) and answers the
 * Response as is: exports answer a file, or 202 with a task to follow.
 */
export async function fetchAuthed(path, retried) {
  session.requests++;
  let resp;
  try {
    resp = await fetch(path, { headers: { Authorization: 'Bearer ' + session.access, Accept: 'application/json, */*' }, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { title: 'Network error', detail: 'The server did not answer: ' + e.message });
  }
  if (resp.status === 401 && !retried) {
    await refresh();
    return fetchAuthed(path, true);
  }
  return resp;
}

/** problemOf turns a failed response into an ApiError with its problem details. */
export async function problemOf(resp) {
  const data = (resp.headers.get('Content-Type') || '').includes('json') ? await resp.json().catch(() => ({})) : {};
  const err = new ApiError(resp.status, data);
  if (resp.status === 429) {
    const after = Number(resp.headers.get('Retry-After')) || 0;
    err.detail = (err.detail || 'Too many requests') + (after ? ` (try again in ${after} s)` : '');
    err.message = err.detail;
  }
  return err;
}

/**
 * save hands a file response to the browser as a download under the name the server's
 * Content-Disposition gives (fallback otherwise). The bytes never become a page: they go to a
 * blob saved by an <a download> click.
 */
export async function save(resp, fallback) {
  const m = /filename="?([A-Za-z0-9._-]+)"?/.exec(resp.headers.get('Content-Disposition') || '');
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = m ? m[1] : fallback;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return a.download;
}

/** download fetches a file with the session's token and saves it (see save). */
export async function download(path, fallback) {
  const resp = await fetchAuthed(path);
  if (!resp.ok) throw await problemOf(resp);
  return save(resp, fallback);
}
