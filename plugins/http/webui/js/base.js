// base.js — where this page lives, and how every URL the UI uses is built from it.
//
// The page's base is <webroot> or <webroot>mailbox/{name}/, always ending in '/'. The server
// writes it into <base href> (README.md); document.baseURI is therefore the base, and every
// URL here is relative to it. Nothing in the UI builds an absolute path by hand.

function compute_base() {
  const u = new URL(document.baseURI);
  u.search = '';
  u.hash = '';
  let p = u.pathname;
  if (!p.endsWith('/')) p = p.slice(0, p.lastIndexOf('/') + 1);
  // The server did not fill in <base href="{{base}}"> (the file served as is) and this is
  // a deep link: the document's directory is <base>view/; the base is one level up.
  if (document.querySelector('base')?.getAttribute('href')?.startsWith('{{') && p.endsWith('/view/')) {
    p = p.slice(0, -'view/'.length);
  }
  u.pathname = p;
  return u;
}

export const base = compute_base();

// <webroot>mailbox/{name}/ → { webroot, mailbox: name }; otherwise the default mailbox.
const m = /^(.*\/)mailbox\/([^/]+)\/$/.exec(base.pathname);
let decoded = null;
if (m) {
  try {
    decoded = decodeURIComponent(m[2]);
  } catch {
    decoded = null;
  }
}
export const mailbox = decoded; // null: the default mailbox at the web root
export const webroot = new URL(decoded !== null ? m[1] : base.pathname, base);

// A URL relative to the base, with optional query parameters (undefined/null skipped).
export function url(rel, params) {
  const u = new URL(rel, base);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
    }
  }
  return u;
}

// The route of the current location: { name: 'list'|'search'|'view', id, query, page }.
export function current_route(loc = window.location) {
  const path = loc.pathname;
  let rest = path.startsWith(base.pathname) ? path.slice(base.pathname.length) : '';
  const params = new URLSearchParams(loc.search);
  const page = Math.max(1, Math.min(1e6, parseInt(params.get('page') || '1', 10) || 1));
  if (rest.startsWith('view/')) {
    let id = rest.slice(5);
    try {
      id = decodeURIComponent(id);
    } catch {
      /* keep as is */
    }
    if (id) return { name: 'view', id, query: '', page: 1 };
  }
  if (rest === 'search') {
    const q = (params.get('q') || '').trim();
    if (q) return { name: 'search', id: null, query: q, page };
  }
  return { name: 'list', id: null, query: '', page };
}

// The URL of a route (relative to the base), for links and history entries.
export function route_url(r) {
  if (r.name === 'view') return url('view/' + encodeURIComponent(r.id));
  if (r.name === 'search') return url('search', { q: r.query, page: r.page > 1 ? r.page : null });
  return url('./', { page: r.page > 1 ? r.page : null });
}
