// list.js — the message list (inbox or search results), one page of up to 50 rows.
//
// Rows are keyed by message ID and reused between renders, so a live `new` event inserts
// one row at the top without rebuilding (and without stealing focus from) the others.
// All text is inserted as text nodes (dom.js).

import { h, clear, icon } from './dom.js';
import { route_url } from './base.js';
import { addr_name, addr_full, addr_list, parse_date, rel_time, abs_time, size, plural } from './format.js';
import { page_size } from './api.js';

export function build_list_view(ctx) {
  const select_all = h('input', {
    type: 'checkbox',
    class: 'sel-all',
    'aria-label': 'Select all messages on this page',
    onchange: (e) => ctx.select_all(e.target.checked),
  });
  const title = h('h1', { id: 'list-title', class: 'list-title' });
  const count = h('span', { class: 'list-count', 'aria-live': 'polite' });
  const bulk = h(
    'div',
    { class: 'bulk', role: 'group', 'aria-label': 'Selected messages', hidden: true },
    h('span', { class: 'bulk-count' }),
    h('button', { type: 'button', class: 'btn', onclick: () => ctx.bulk_read(true) }, icon('open'), 'Mark read'),
    h('button', { type: 'button', class: 'btn', onclick: () => ctx.bulk_read(false) }, icon('mail'), 'Mark unread'),
    h('button', { type: 'button', class: 'btn btn-danger', onclick: () => ctx.bulk_delete() }, icon('trash'), 'Delete'),
    h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => ctx.select_all(false) }, 'Clear selection'),
  );
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const banner = h('div', { class: 'banner', hidden: true });
  const ol = h('ol', { class: 'msg-list', 'aria-labelledby': 'list-title' });
  const empty = h('p', { class: 'empty', hidden: true });
  const section = h(
    'section',
    { class: 'list-view', 'aria-labelledby': 'list-title' },
    h('div', { class: 'list-toolbar' }, select_all, h('div', { class: 'list-heading' }, title, count), bulk, pager),
    banner,
    ol,
    empty,
  );
  return { section, select_all, title, count, bulk, pager, banner, ol, empty, rows: new Map() };
}

function row_for(m, ctx) {
  const subject = m.Subject || '(no subject)';
  const d = parse_date(m.Created);
  const to = addr_list(m.To);
  const tags = Array.isArray(m.Tags) ? m.Tags : [];
  const checkbox = h('input', {
    type: 'checkbox',
    class: 'sel',
    checked: ctx.state.selected.has(m.ID),
    'aria-label': `Select: ${subject}`,
    onchange: (e) => ctx.select(m.ID, e.target.checked),
  });
  const link = h(
    'a',
    { class: 'msg-link', href: route_url({ name: 'view', id: m.ID }).href, dataset: { nav: '', id: m.ID } },
    m.Read ? null : h('span', { class: 'visually-hidden' }, 'Unread. '),
    h(
      'span',
      { class: 'from' },
      h('span', { class: 'from-name', title: addr_full(m.From) }, addr_name(m.From) || '(no sender)'),
      to ? h('span', { class: 'to', title: to }, 'To: ' + to) : null,
    ),
    h(
      'span',
      { class: 'body' },
      h('span', { class: 'subject' }, subject),
      m.Snippet ? h('span', { class: 'snippet' }, m.Snippet) : null,
    ),
    tags.length ? h('span', { class: 'tags' }, tags.map((t) => h('span', { class: 'chip' }, t))) : null,
    h(
      'span',
      { class: 'meta' },
      m.Attachments > 0 ? icon('clip', plural(m.Attachments, 'attachment')) : null,
      h('time', { datetime: m.Created, title: abs_time(d), dataset: { rel: '' } }, rel_time(d)),
      h('span', { class: 'size' }, size(m.Size)),
    ),
  );
  const li = h('li', { class: 'msg' + (m.Read ? '' : ' unread'), dataset: { id: m.ID } }, checkbox, link);
  return li;
}

// Brings the view in line with ctx.state.list. `fresh` is a set of IDs to highlight.
export function render_list(v, ctx, fresh) {
  const st = ctx.state;
  const l = st.list;
  const route = l.route;
  v.title.textContent = route.name === 'search' ? `Search: ${route.query}` : ctx.mailbox_title();
  const from = l.start + 1;
  const to = l.start + l.messages.length;
  v.count.textContent = l.loading && !l.loaded
    ? 'Loading…'
    : l.messages_count === 0
      ? ''
      : `${from}–${to} of ${l.messages_count}` + (route.name === 'search' ? ' matching' : '');

  // Rows: reuse the node of an unchanged message object, insert/move only what changed.
  const keep = new Map();
  const els = l.messages.map((m) => {
    let r = v.rows.get(m.ID);
    if (!r || r.msg !== m) r = { msg: m, el: row_for(m, ctx) };
    else r.el.querySelector('.sel').checked = st.selected.has(m.ID);
    r.el.classList.toggle('active', st.active === m.ID);
    r.el.classList.toggle('selected', st.selected.has(m.ID));
    if (fresh && fresh.has(m.ID)) r.el.classList.add('fresh');
    keep.set(m.ID, r);
    return r.el;
  });
  let cursor = v.ol.firstChild;
  for (const el of els) {
    if (el === cursor) cursor = cursor.nextSibling;
    else v.ol.insertBefore(el, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    v.ol.removeChild(cursor);
    cursor = next;
  }
  v.rows = keep;

  v.empty.hidden = l.messages.length > 0 || (l.loading && !l.loaded);
  v.empty.textContent = l.error
    ? `Could not load messages: ${l.error}`
    : route.name === 'search'
      ? 'No messages match this search.'
      : 'No messages yet. Mail sent to the SMTP listener shows up here instantly.';
  v.empty.classList.toggle('error', !!l.error);

  const sel = l.messages.filter((m) => st.selected.has(m.ID)).length;
  v.select_all.checked = sel > 0 && sel === l.messages.length;
  v.select_all.indeterminate = sel > 0 && sel < l.messages.length;
  v.select_all.disabled = l.messages.length === 0;
  v.bulk.hidden = sel === 0;
  v.bulk.querySelector('.bulk-count').textContent = `${sel} selected`;

  if (l.pending_new > 0) {
    v.banner.hidden = false;
    clear(v.banner).append(
      h('span', {}, plural(l.pending_new, 'new message') + ' arrived. '),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => ctx.reload_list() }, icon('refresh'), 'Show'),
    );
  } else {
    v.banner.hidden = true;
  }

  render_pager(v.pager, l, ctx);
}

function render_pager(nav, l, ctx) {
  clear(nav);
  const pages = Math.max(1, Math.ceil(l.messages_count / page_size));
  const page = Math.floor(l.start / page_size) + 1;
  if (pages <= 1) return;
  const r = l.route;
  const link = (p, title, text, disabled) =>
    disabled
      ? h('span', { class: 'btn btn-small', 'aria-disabled': 'true' }, text)
      : h('a', { class: 'btn btn-small', href: route_url({ ...r, page: p }).href, dataset: { nav: '' }, title }, text);
  nav.append(
    link(page - 1, `Page ${page - 1}`, [h('span', { 'aria-hidden': 'true' }, '‹ '), 'Newer'], page <= 1),
    h('span', { class: 'page-no' }, `Page ${page} of ${pages}`),
    link(page + 1, `Page ${page + 1}`, ['Older', h('span', { 'aria-hidden': 'true' }, ' ›')], page >= pages),
  );
}

// Rewrites the relative times of every row (called every 30 s).
export function refresh_times(root) {
  const now = new Date();
  for (const t of root.querySelectorAll('time[data-rel]')) t.textContent = rel_time(parse_date(t.dateTime), now);
}
