// main.js — the Sluice web UI: routing, state, live updates and actions.
//
// One page, three routes under the page's base: <base> (inbox), <base>search?q= and
// <base>view/{ID}; history.pushState moves between them, the server serves index.html for
// each (README.md). State lives in `state`; WebSocket events (live.js) update it and the
// visible view. API failures are shown as toasts and never leave the UI half-updated: the
// list is changed only after the server said ok (or when its own event arrives).

import { base, webroot, mailbox, current_route, route_url } from './base.js';
import * as api from './api.js';
import { h, clear } from './dom.js';
import { build_list_view, render_list, refresh_times } from './list.js';
import { render_message } from './message.js';
import { live_events } from './live.js';
import { plural, tag_query } from './format.js';

const $ = (id) => document.getElementById(id);
const main = $('main');

const state = {
  route: current_route(),
  // The list last loaded: its route, one page of MessageSummary objects, the counts.
  list: { route: { name: 'list', page: 1, query: '' }, messages: [], start: 0, messages_count: 0, loaded: false, loading: false, error: '', pending_new: 0 },
  total: 0,
  unread: 0,
  tags: [],
  selected: new Set(),
  active: null,
  last_tab: null,
  current: null, // the open Message
  label: '',
  mailboxes: [],
  hide_delete_all: false,
};

let list_view = null;
let msg_view = null; // the open message (render_message's handle)
let list_abort = null;
let msg_abort = null;
let list_scroll = 0;

// ---- toasts and confirmation ------------------------------------------------------------

function toast(text, kind = 'info') {
  const box = $('toasts');
  while (box.children.length >= 4) box.firstChild.remove();
  const t = h('div', { class: `toast toast-${kind}` }, h('span', {}, text), h('button', { type: 'button', class: 'chip-x', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×'));
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 10000 : 5000);
}

function report(e) {
  if (e?.name === 'AbortError') return;
  toast(e?.message || String(e), 'error');
}

function confirm_dialog(text, ok_label) {
  const dlg = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok_label;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    $('confirm-ok').focus();
  });
}

// ---- header, sidebar, title -------------------------------------------------------------

function mailbox_title() {
  return mailbox === null ? 'Inbox' : mailbox;
}

function update_counts() {
  const n = state.unread;
  const parts = [];
  if (state.current) parts.push(state.current.Subject || '(no subject)');
  if (mailbox !== null) parts.push(mailbox);
  if (state.label) parts.push(state.label);
  parts.push('Sluice');
  document.title = (n > 0 ? `(${n}) ` : '') + parts.join(' · ');
  const badge = $('count-unread');
  badge.hidden = n === 0;
  badge.textContent = String(n);
  badge.setAttribute('aria-label', plural(n, 'unread message'));
  $('stats').textContent = `${plural(state.total, 'message')}, ${n} unread`;
  $('mark-all-read').disabled = n === 0;
  $('delete-all').disabled = state.total === 0;
  $('delete-all').hidden = state.hide_delete_all;
}

function render_tags_nav() {
  const ul = clear($('tag-list'));
  $('tags-heading').hidden = state.tags.length === 0;
  const q = state.route.name === 'search' ? state.route.query : '';
  for (const t of state.tags) {
    const tq = tag_query(t);
    ul.append(h('li', {}, h('a', { class: 'nav-item tag-link', href: route_url({ name: 'search', query: tq, page: 1 }).href, dataset: { nav: '' }, 'aria-current': q === tq ? 'page' : null }, h('span', { class: 'chip' }, t))));
  }
  $('nav-inbox').setAttribute('aria-current', state.route.name === 'list' ? 'page' : 'false');
}

function render_mailboxes() {
  const box = $('mailbox-switch');
  const list = state.mailboxes;
  box.hidden = list.length <= 1;
  if (box.hidden) return;
  const sel = clear($('mailbox-select'));
  // At the web root the default mailbox is shown; Sluice's default is named "default".
  const current = mailbox !== null ? mailbox : list.some((x) => x.Name === 'default') ? 'default' : '';
  if (current === '') sel.append(h('option', { value: '' }, 'Web root'));
  for (const mb of list) {
    const text = mb.Unread > 0 ? `${mb.Name} (${mb.Unread})` : mb.Name;
    sel.append(h('option', { value: mb.Name }, text));
  }
  sel.value = current;
}

// The counts of every mailbox, refreshed at most once a second while events come in; a
// change during a fetch schedules one more, so the switcher ends up current.
let mailboxes_timer = null;
let mailboxes_busy = false;
let mailboxes_dirty = false;
function load_mailboxes(delay = 0) {
  if (mailboxes_timer || mailboxes_busy) {
    mailboxes_dirty = true;
    return;
  }
  mailboxes_timer = setTimeout(() => {
    mailboxes_timer = null;
    mailboxes_busy = true;
    mailboxes_dirty = false;
    const done = (list) => {
      state.mailboxes = Array.isArray(list) ? list.filter((x) => x && typeof x.Name === 'string') : [];
      render_mailboxes();
      mailboxes_busy = false;
      if (mailboxes_dirty) load_mailboxes(1000);
    };
    api.get_mailboxes().then(done, () => done([]));
  }, delay);
}

let tags_timer = null;
function load_tags(delay = 500) {
  if (tags_timer) return;
  tags_timer = setTimeout(() => {
    tags_timer = null;
    api.get_tags().then((t) => {
      if (Array.isArray(t)) {
        state.tags = t.filter((x) => typeof x === 'string');
        render_tags_nav();
      }
    }, () => {});
  }, delay);
}

function set_conn(s) {
  const el = $('conn');
  el.dataset.state = s;
  const text = s === 'open' ? 'Live updates: connected' : s === 'connecting' ? 'Live updates: connecting' : 'Live updates: disconnected, retrying';
  el.title = text;
  $('conn-text').textContent = text;
}

// ---- the list ---------------------------------------------------------------------------

function same_list(a, b) {
  return a.name === b.name && a.query === b.query && a.page === b.page;
}

async function load_list(route, { quiet = false } = {}) {
  list_abort?.abort();
  const ac = new AbortController();
  list_abort = ac;
  const l = state.list;
  if (!same_list(l.route, route)) {
    Object.assign(l, { route, messages: [], start: 0, messages_count: 0, loaded: false, error: '', pending_new: 0 });
    state.selected.clear();
  }
  l.loading = true;
  // Events that arrive while the request is in flight may or may not be in its answer;
  // they are kept and applied again to the answer (each is idempotent).
  l.replay = [];
  if (!quiet) draw_list();
  const start = (route.page - 1) * api.page_size;
  try {
    const r = route.name === 'search' ? await api.search_messages(route.query, start, ac.signal) : await api.list_messages(start, ac.signal);
    if (ac.signal.aborted) return;
    l.messages = Array.isArray(r.messages) ? r.messages.filter((m) => m && typeof m.ID === 'string') : [];
    l.start = Number(r.start) || 0;
    l.messages_count = Number(r.messages_count ?? r.total) || 0;
    l.loaded = true;
    l.error = '';
    l.pending_new = 0;
    state.total = Number(r.total) || 0;
    state.unread = Number(r.unread) || 0;
    if (Array.isArray(r.tags)) state.tags = r.tags.filter((x) => typeof x === 'string');
    const replay = l.replay || [];
    l.replay = null;
    for (const [type, data] of replay) apply_to_list(type, data);
    const ids = new Set(l.messages.map((m) => m.ID));
    for (const id of state.selected) if (!ids.has(id)) state.selected.delete(id);
    if (state.active && !ids.has(state.active)) state.active = null;
    // A page past the end (messages were deleted meanwhile): show the last one instead.
    const last = Math.max(1, Math.ceil(l.messages_count / api.page_size));
    if (!l.messages.length && route.page > last && state.route.name === route.name && same_list(state.route, route)) {
      navigate({ ...route, page: last }, { replace: true });
      return;
    }
  } catch (e) {
    if (ac.signal.aborted) return;
    l.error = e.message;
  } finally {
    if (list_abort === ac) {
      l.loading = false;
      l.replay = null;
      list_abort = null;
    }
  }
  update_counts();
  render_tags_nav();
  draw_list();
}

function reload_list() {
  return load_list(state.list.route, { quiet: true });
}

function draw_list(fresh) {
  if (msg_view) {
    const msgs = state.list.messages;
    const i = msgs.findIndex((x) => x.ID === msg_view.id);
    const n = i > 0 ? msgs[i - 1] : null;
    const o = i >= 0 && i + 1 < msgs.length ? msgs[i + 1] : null;
    if (n?.ID !== msg_view.newer?.ID || o?.ID !== msg_view.older?.ID) msg_view.set_neighbors(n, o);
  }
  if (state.route.name === 'view' || !list_view) return;
  render_list(list_view, list_ctx, fresh);
}

const list_ctx = {
  state,
  mailbox_title,
  reload_list,
  select(id, on) {
    if (on) state.selected.add(id);
    else state.selected.delete(id);
    draw_list();
  },
  select_all(on) {
    if (on) for (const m of state.list.messages) state.selected.add(m.ID);
    else state.selected.clear();
    draw_list();
  },
  async bulk_read(read) {
    const ids = [...state.selected];
    if (!ids.length) return;
    try {
      await api.set_read(ids, read);
      for (const id of ids) patch(id, { Read: read });
      state.selected.clear();
      draw_list();
    } catch (e) {
      report(e);
    }
  },
  async bulk_delete() {
    const ids = [...state.selected];
    if (!ids.length) return;
    await delete_ids(ids);
  },
};

async function delete_ids(ids) {
  try {
    await api.delete_messages(ids);
    for (const id of ids) remove(id);
    state.selected.clear();
    draw_list();
    refill_soon();
    toast(`Deleted ${plural(ids.length, 'message')}.`);
    return true;
  } catch (e) {
    report(e);
    return false;
  }
}

// Replaces a message in the list with an updated copy (a new object, so its row is redrawn).
function patch(id, fields) {
  const l = state.list;
  const i = l.messages.findIndex((m) => m.ID === id);
  if (i < 0) return false;
  const old = l.messages[i];
  if (Object.entries(fields).every(([k, v]) => old[k] === v)) return true;
  l.messages[i] = { ...old, ...fields };
  return true;
}

// After deletions the page may be short while older messages exist: fetch it again.
let refill_timer = null;
function refill_soon() {
  const l = state.list;
  if (refill_timer || !l.loaded || l.messages.length >= api.page_size || l.messages_count <= l.start + l.messages.length) return;
  refill_timer = setTimeout(() => {
    refill_timer = null;
    if (state.route.name !== 'view') reload_list();
  }, 300);
}

function remove(id) {
  const l = state.list;
  const i = l.messages.findIndex((m) => m.ID === id);
  state.selected.delete(id);
  if (i < 0) return;
  l.messages.splice(i, 1);
  l.messages_count = Math.max(0, l.messages_count - 1);
  if (state.active === id) state.active = l.messages[i]?.ID ?? l.messages[i - 1]?.ID ?? null;
}

// ---- the message view -------------------------------------------------------------------

// Asks for the recipients and releases message `id` to them; the server's answer (the
// upstream's reply on failure) is shown as a toast.
function release_dialog(id) {
  const dlg = $('release');
  const input = $('release-to');
  $('release-via').textContent = state.relay?.SMTPServer ? `Via ${state.relay.SMTPServer}.` : '';
  dlg.returnValue = '';
  dlg.addEventListener(
    'close',
    async () => {
      if (dlg.returnValue !== 'ok') return;
      const to = input.value.split(/[\s,;]+/).filter((x) => x);
      if (!to.length) return;
      try {
        await api.release_message(id, to);
        toast(`Released to ${to.join(', ')}.`);
      } catch (e) {
        report(e);
      }
    },
    { once: true },
  );
  dlg.showModal();
  input.focus();
}

const msg_ctx = {
  state,
  release: release_dialog,
  async toggle_read(id) {
    if (!msg_view || msg_view.id !== id) return;
    const read = !state.current.Read;
    try {
      await api.set_read([id], read);
      msg_view.set_read(read);
      patch(id, { Read: read });
    } catch (e) {
      report(e);
    }
  },
  async delete_current(id) {
    const next = msg_view?.older || msg_view?.newer;
    if (await delete_ids([id])) {
      if (next) navigate({ name: 'view', id: next.ID }, { replace: true });
      else navigate(state.list.route, { replace: true });
    }
  },
  async save_tags(id, tags) {
    try {
      await api.set_tags([id], tags);
      if (msg_view?.id === id) msg_view.set_tags(tags);
      patch(id, { Tags: tags });
      for (const t of tags) if (!state.tags.some((x) => x.toLowerCase() === t.toLowerCase())) state.tags.push(t);
      state.tags.sort((a, b) => a.localeCompare(b));
      render_tags_nav();
      load_tags();
    } catch (e) {
      report(e);
    }
  },
};

async function open_message(id) {
  msg_abort?.abort();
  msg_view?.abort();
  msg_view = null;
  state.current = null;
  const ac = new AbortController();
  msg_abort = ac;
  clear(main).append(h('p', { class: 'muted loading' }, 'Loading message…'));
  let m;
  try {
    m = await api.get_message(id, ac.signal);
  } catch (e) {
    if (ac.signal.aborted) return;
    const missing = e.status === 404;
    clear(main).append(
      h('section', { class: 'not-found' },
        h('h1', {}, missing ? 'Message not found' : 'Could not load the message'),
        h('p', {}, missing ? 'It may have been deleted.' : e.message),
        h('a', { class: 'btn', href: route_url(state.list.route).href, dataset: { nav: '' } }, 'Back to the list')),
    );
    return;
  }
  if (ac.signal.aborted || state.route.name !== 'view' || state.route.id !== id) return;
  m.Read = true; // the Message object has no Read key; GET marked it read
  state.current = m;
  state.active = id;
  // GET /message marks it read; the server also sends an update event, this is just quicker.
  patch(id, { Read: true });
  msg_view = render_message(main, msg_ctx, m);
  update_counts();
}

// ---- routing ----------------------------------------------------------------------------

function navigate(route, { replace = false } = {}) {
  const u = route_url(route);
  const from_list = state.route.name !== 'view' && route.name === 'view';
  if (replace) history.replaceState({ from_list: history.state?.from_list && route.name === 'view' }, '', u);
  else history.pushState({ from_list }, '', u);
  show(current_route());
}

function show(route) {
  const prev = state.route;
  state.route = route;
  close_sidebar();
  $('search-input').value = route.name === 'search' ? route.query : '';
  render_tags_nav();
  if (route.name === 'view') {
    if (prev.name !== 'view') list_scroll = main.scrollTop;
    open_message(route.id);
    main.scrollTop = 0;
    return;
  }
  msg_abort?.abort();
  msg_view?.abort();
  msg_view = null;
  state.current = null;
  update_counts();
  clear(main).append(list_view.section);
  const same = same_list(state.list.route, route) && state.list.loaded;
  if (same) {
    // Back from a message: the list was kept current by events; redraw and restore.
    draw_list();
    main.scrollTop = prev.name === 'view' ? list_scroll : 0;
    const row = state.active && list_view.rows.get(state.active);
    if (row && prev.name === 'view') row.el.querySelector('.msg-link').focus({ preventScroll: true });
    reload_list();
  } else {
    main.scrollTop = 0;
    load_list(route);
  }
}

// In-page navigation for links marked data-nav (plain left clicks only).
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const u = new URL(a.href);
  if (u.origin !== base.origin || !u.pathname.startsWith(base.pathname)) return;
  e.preventDefault();
  if ('back' in a.dataset && history.state?.from_list) {
    history.back();
    return;
  }
  navigate(current_route(u));
});

window.addEventListener('popstate', () => show(current_route()));

$('search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = $('search-input').value.trim();
  $('search-help').hidden = true;
  $('search-help-btn').setAttribute('aria-expanded', 'false');
  navigate(q ? { name: 'search', query: q, page: 1 } : { name: 'list', page: 1, query: '' });
});

$('search-help-btn').addEventListener('click', () => {
  const p = $('search-help');
  p.hidden = !p.hidden;
  $('search-help-btn').setAttribute('aria-expanded', String(!p.hidden));
});

document.addEventListener('click', (e) => {
  if ($('sidebar').classList.contains('open') && !e.target.closest('#sidebar, #nav-toggle')) close_sidebar();
  const p = $('search-help');
  if (!p.hidden && !e.target.closest('#search-help, #search-help-btn')) {
    p.hidden = true;
    $('search-help-btn').setAttribute('aria-expanded', 'false');
  }
});

function close_sidebar() {
  $('sidebar').classList.remove('open');
  $('nav-toggle').setAttribute('aria-expanded', 'false');
}

$('nav-toggle').addEventListener('click', () => {
  const open = !$('sidebar').classList.contains('open');
  $('sidebar').classList.toggle('open', open);
  $('nav-toggle').setAttribute('aria-expanded', String(open));
  if (open) $('sidebar').querySelector('a, button, select')?.focus();
});

$('mailbox-select').addEventListener('change', (e) => {
  const name = e.target.value;
  window.location.assign(name ? new URL(`mailbox/${encodeURIComponent(name)}/`, webroot) : webroot);
});

$('mark-all-read').addEventListener('click', async () => {
  const q = state.route.name === 'search' ? state.route.query : '';
  try {
    await api.set_read_all(true, q);
    for (const m of state.list.messages) patch(m.ID, { Read: true });
    if (!q) state.unread = 0;
    update_counts();
    draw_list();
  } catch (e) {
    report(e);
  }
});

$('delete-all').addEventListener('click', async () => {
  const q = state.route.name === 'search' ? state.route.query : '';
  const n = q ? state.list.messages_count : state.total;
  const what = q ? `all ${plural(n, 'message')} matching “${q}”` : `all ${plural(n, 'message')}${mailbox !== null ? ` in ${mailbox}` : ''}`;
  if (!(await confirm_dialog(`Delete ${what}? This cannot be undone.`, 'Delete all'))) return;
  try {
    if (q) await api.delete_search(q);
    else await api.delete_all();
    if (!q) {
      state.list.messages = [];
      state.list.messages_count = 0;
      state.total = 0;
      state.unread = 0;
    }
    state.selected.clear();
    if (state.route.name === 'view') navigate(state.list.route);
    else {
      update_counts();
      draw_list();
      reload_list();
    }
  } catch (e) {
    report(e);
  }
});

// ---- keyboard ---------------------------------------------------------------------------

function move_active(delta) {
  const msgs = state.list.messages;
  if (!msgs.length) return;
  let i = msgs.findIndex((m) => m.ID === state.active);
  i = i < 0 ? (delta > 0 ? 0 : msgs.length - 1) : Math.max(0, Math.min(msgs.length - 1, i + delta));
  state.active = msgs[i].ID;
  draw_list();
  list_view.rows.get(state.active)?.el.querySelector('.msg-link').focus();
}

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && $('sidebar').classList.contains('open')) {
    close_sidebar();
    $('nav-toggle').focus();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t.closest('input, textarea, select, [contenteditable], dialog')) {
    if (e.key === 'Escape' && t.id === 'search-input') t.blur();
    return;
  }
  if (e.key === 'Escape' && !$('search-help').hidden) {
    $('search-help').hidden = true;
    $('search-help-btn').setAttribute('aria-expanded', 'false');
    return;
  }
  if (e.key === '/') {
    e.preventDefault();
    $('search-input').focus();
    return;
  }
  const in_tabs = t.closest('[role=tablist]');
  if (state.route.name === 'view') {
    if (!msg_view) return;
    if (e.key === 'j' && msg_view.older) navigate({ name: 'view', id: msg_view.older.ID });
    else if (e.key === 'k' && msg_view.newer) navigate({ name: 'view', id: msg_view.newer.ID });
    else if (e.key === 'Delete' || e.key === '#') msg_ctx.delete_current(msg_view.id);
    else if ((e.key === 'u' || e.key === 'Escape') && !in_tabs) {
      if (history.state?.from_list) history.back();
      else navigate(state.list.route);
    } else return;
    e.preventDefault();
    return;
  }
  if (e.key === 'j' || (e.key === 'ArrowDown' && t.closest('.msg-list'))) move_active(1);
  else if (e.key === 'k' || (e.key === 'ArrowUp' && t.closest('.msg-list'))) move_active(-1);
  else if (e.key === 'Enter' && state.active && !t.closest('a, button')) navigate({ name: 'view', id: state.active });
  else if (e.key === 'x' && state.active) list_ctx.select(state.active, !state.selected.has(state.active));
  else if (e.key === 'Delete' || e.key === '#') {
    const ids = state.selected.size ? [...state.selected] : state.active ? [state.active] : [];
    if (ids.length) delete_ids(ids);
  } else return;
  e.preventDefault();
});

main.addEventListener('focusin', (e) => {
  const a = e.target.closest('.msg-link');
  if (a && state.route.name !== 'view' && a.dataset.id !== state.active) {
    state.active = a.dataset.id;
    for (const [id, r] of list_view.rows) r.el.classList.toggle('active', id === state.active);
  }
});

// ---- live events ------------------------------------------------------------------------

// Applies a list-changing event to the loaded page; true when a `new` message was added.
function apply_to_list(type, data) {
  const l = state.list;
  if (type === 'new') {
    if (l.messages.some((m) => m.ID === data.ID)) return false;
    if (l.route.name === 'list' && l.route.page === 1) {
      l.messages.unshift(data);
      if (l.messages.length > api.page_size) l.messages.length = api.page_size;
      l.messages_count++;
      return true;
    }
    l.pending_new++;
    return false;
  }
  if (type === 'update') {
    const f = {};
    if (typeof data.Read === 'boolean') f.Read = data.Read;
    if (Array.isArray(data.Tags)) f.Tags = data.Tags.filter((t) => typeof t === 'string');
    patch(data.ID, f);
  } else if (type === 'delete') {
    remove(data.ID);
  } else if (type === 'stats' && data) {
    // Newer than the counts in a list answer that was under way when it came.
    state.total = Number(data.Total) || 0;
    state.unread = Number(data.Unread) || 0;
  } else if (type === 'truncate') {
    l.messages = [];
    l.messages_count = 0;
    state.selected.clear();
  }
  return false;
}

function on_event(type, data) {
  const l = state.list;
  const valid = data && typeof data === 'object' && typeof data.ID === 'string';
  if (((type === 'new' || type === 'update' || type === 'delete') && valid) || type === 'truncate' || type === 'stats') l.replay?.push([type, data]);
  switch (type) {
    case 'new': {
      if (!valid || l.messages.some((m) => m.ID === data.ID)) return;
      if (!data.Read) state.unread++;
      state.total++;
      for (const t of Array.isArray(data.Tags) ? data.Tags : []) if (typeof t === 'string' && !state.tags.includes(t)) state.tags.push(t);
      if (l.loaded || l.loading) {
        if (apply_to_list('new', data)) draw_list(new Set([data.ID]));
        else draw_list();
      }
      update_counts();
      render_tags_nav();
      load_mailboxes(1000);
      break;
    }
    case 'stats':
      if (!data) return;
      state.total = Number(data.Total) || 0;
      state.unread = Number(data.Unread) || 0;
      update_counts();
      load_mailboxes(1000);
      break;
    case 'update': {
      if (!valid) return;
      apply_to_list('update', data);
      if (msg_view?.id === data.ID) {
        if (typeof data.Read === 'boolean') msg_view.set_read(data.Read);
        if (Array.isArray(data.Tags)) msg_view.set_tags(data.Tags.filter((t) => typeof t === 'string'));
      }
      if (Array.isArray(data.Tags)) load_tags();
      draw_list();
      break;
    }
    case 'delete':
      if (!valid) return;
      apply_to_list('delete', data);
      if (msg_view?.id === data.ID) msg_view.gone('This message has been deleted.');
      draw_list();
      refill_soon();
      load_mailboxes(1000);
      break;
    case 'truncate':
      apply_to_list('truncate', null);
      state.total = 0;
      state.unread = 0;
      if (msg_view) msg_view.gone('All messages have been deleted.');
      update_counts();
      draw_list();
      load_tags();
      load_mailboxes(1000);
      break;
    case 'changed': // a bulk change of many messages (in place of one event each)
    case 'prune':
      reload_list();
      load_mailboxes(1000);
      load_tags();
      if (msg_view) {
        const id = msg_view.id;
        api.get_headers(id).catch((e) => e.status === 404 && msg_view?.id === id && msg_view.gone('This message has been deleted.'));
      }
      break;
    case 'error':
      if (data && typeof data.Message === 'string') {
        const who = [data.Type, data.IP].filter((x) => typeof x === 'string' && x).join(' ');
        toast(`${who ? who + ': ' : ''}${data.Message}`.slice(0, 500), data.Level === 'error' ? 'error' : 'warn');
      }
      break;
    default:
      break;
  }
}

// ---- start ------------------------------------------------------------------------------

list_view = build_list_view(list_ctx);
setInterval(() => refresh_times(main), 30000);

api.get_webui().then(
  (w) => {
    if (w && typeof w.Label === 'string' && w.Label) {
      state.label = w.Label;
      $('label').textContent = w.Label;
      $('label').hidden = false;
    }
    state.hide_delete_all = !!w?.HideDeleteAllButton;
    state.relay = w?.MessageRelay?.Enabled ? w.MessageRelay : null;
    if (state.current && state.relay) show(state.route);
    update_counts();
  },
  () => {},
);
load_mailboxes();
update_counts();
show(state.route);
// Opened on a message: load the inbox behind it too (tags, counts, the way back).
if (state.route.name === 'view') {
  load_tags(0);
  load_list(state.list.route, { quiet: true });
}

new live_events({
  on_event,
  on_state: set_conn,
  on_open: (again) => {
    // After a reconnect, what happened meanwhile is unknown: reload.
    if (again) {
      reload_list();
      load_tags(0);
    }
  },
}).start();
