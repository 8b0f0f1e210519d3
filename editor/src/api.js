// Calls to the server with the session cookie and the page's CSRF token.
const csrf = () => (document.querySelector('meta[name="csrf"]') || {}).content || '';

async function call(method, url, body) {
  const r = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const err = new Error((data && data.error && data.error.message) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return data;
}

export const get = (url) => call('GET', url);
export const post = (url, body) => call('POST', url, body || {});
