// api.js — the Mailpit-compatible REST API, as the UI uses it.
//
// Every request goes to a URL relative to the page's base (base.js). Requests time out after
// 30 s (the link check: 90 s); failures reject with an ApiError carrying the status and the
// server's (short) text, which callers show to the user. Responses larger than the caller's limit are cut (raw).

import { url } from './base.js';

export class ApiError extends Error {
  constructor(status, text) {
    super(status ? `${status}: ${text}` : text);
    this.status = status;
  }
}

const timeout_ms = 30000;
export const tz = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
})();

async function send(method, rel, { query, body, signal, timeout = timeout_ms } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException('timed out', 'TimeoutError')), timeout);
  const onabort = () => ctl.abort(signal.reason);
  if (signal) {
    if (signal.aborted) ctl.abort(signal.reason);
    else signal.addEventListener('abort', onabort, { once: true });
  }
  const init = { method, signal: ctl.signal, credentials: 'same-origin', cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  try {
    const res = await fetch(url(rel, query), init);
    if (!res.ok) {
      let text = '';
      try {
        text = (await res.text()).trim().slice(0, 300);
      } catch {
        /* body unreadable: the status says enough */
      }
      throw new ApiError(res.status, text || res.statusText);
    }
    return res;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (signal?.aborted) throw e; // the caller gave up; not an error to show
    if (e?.name === 'TimeoutError' || ctl.signal.reason?.name === 'TimeoutError') {
      throw new ApiError(0, 'the server did not answer in time');
    }
    throw new ApiError(0, 'the server cannot be reached');
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onabort);
  }
}

async function json(method, rel, opts) {
  const res = await send(method, rel, opts);
  try {
    return await res.json();
  } catch {
    throw new ApiError(res.status, 'the server sent an unreadable answer');
  }
}

export const page_size = 50;

export function list_messages(start, signal) {
  return json('GET', 'api/v1/messages', { query: { start, limit: page_size }, signal });
}
export function search_messages(query, start, signal) {
  return json('GET', 'api/v1/search', { query: { query, start, limit: page_size, tz }, signal });
}
export function get_message(id, signal) {
  return json('GET', `api/v1/message/${encodeURIComponent(id)}`, { signal });
}
export function get_headers(id, signal) {
  return json('GET', `api/v1/message/${encodeURIComponent(id)}/headers`, { signal });
}
// The raw message as text, at most `limit` bytes: { text, truncated }.
export async function get_raw(id, limit, signal) {
  const res = await send('GET', `api/v1/message/${encodeURIComponent(id)}/raw`, { signal });
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n > limit) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  const all = new Uint8Array(Math.min(n, limit));
  let off = 0;
  for (const c of chunks) {
    const take = Math.min(c.length, all.length - off);
    all.set(c.subarray(0, take), off);
    off += take;
    if (off >= all.length) break;
  }
  return { text: new TextDecoder('utf-8').decode(all), truncated };
}
// The Sluice authentication results of a message, or null when the server has none (any
// answer but 200 with JSON hides the tab).
export async function get_auth(id, signal) {
  try {
    const res = await send('GET', `api/v1/message/${encodeURIComponent(id)}/auth`, { signal });
    return await res.json();
  } catch {
    return null;
  }
}
// The spam stage's result (Mailpit's sa-check shape), or null when the message was not
// scanned (404 hides the tab).
export async function get_sa_check(id, signal) {
  try {
    const res = await send('GET', `api/v1/message/${encodeURIComponent(id)}/sa-check`, { signal });
    return await res.json();
  } catch {
    return null;
  }
}
// Mailpit's link check: { Errors, Links: [{ URL, StatusCode, Status }] }. The server requests
// every link (its own limit is 60 s by default). Throws ApiError.
export function link_check(id, follow, signal) {
  return json('GET', `api/v1/message/${encodeURIComponent(id)}/link-check`, {
    query: follow ? { follow: 'true' } : undefined,
    signal,
    timeout: 90000,
  });
}
// Mailpit's HTML check: { Platforms, Total, Warnings }. Throws ApiError (404 when the server
// has no caniemail data, 400 for a message without HTML).
export function html_check(id, signal) {
  return json('GET', `api/v1/message/${encodeURIComponent(id)}/html-check`, { signal });
}
// Teaches the spam classifier; `as` is "spam" or "ham". Throws ApiError (e.g. 400 when no
// spam service is configured).
export async function train(id, as) {
  const res = await send('POST', `api/v1/message/${encodeURIComponent(id)}/train`, { body: { As: as } });
  return res.json();
}
export function set_read(ids, read) {
  return send('PUT', 'api/v1/messages', { body: { IDs: ids, Read: read } });
}
// All messages, or all matching `search` when given.
export function set_read_all(read, search) {
  const body = search ? { Search: search, Read: read } : { Read: read };
  return send('PUT', 'api/v1/messages', { body, query: search ? { tz } : undefined });
}
export function delete_messages(ids) {
  return send('DELETE', 'api/v1/messages', { body: { IDs: ids } });
}
// Mailpit deletes everything on a DELETE without a body.
export function delete_all() {
  return send('DELETE', 'api/v1/messages');
}
export function delete_search(query) {
  return send('DELETE', 'api/v1/search', { query: { query, tz } });
}
export function get_tags() {
  return json('GET', 'api/v1/tags');
}
export function set_tags(ids, tags) {
  return send('PUT', 'api/v1/tags', { body: { IDs: ids, Tags: tags } });
}
export function get_mailboxes() {
  return json('GET', 'api/v1/mailboxes');
}
// POST …/release: relays the message to `to` (addresses); resolves once it was handed over.
export function release_message(id, to) {
  return send('POST', `api/v1/message/${encodeURIComponent(id)}/release`, { body: { To: to } });
}

export function get_webui() {
  return json('GET', 'api/v1/webui');
}
