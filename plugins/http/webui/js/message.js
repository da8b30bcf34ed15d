// message.js — one message: its headers, tags, List-Unsubscribe and the part tabs.
//
// The HTML body is shown only inside <iframe sandbox> (no allow-scripts, no allow-same-origin)
// loading <base>view/{ID}.html?embed=1, so message HTML never touches the UI's DOM; HTML
// source, text, headers and raw are shown as text. Tabs load their data on first use.
// Links from mail (List-Unsubscribe) become anchors only for http(s) and mailto URLs.

import { h, clear, icon } from './dom.js';
import { url, route_url } from './base.js';
import * as api from './api.js';
import { addr_list, addr_full, parse_date, abs_time, rel_time, size, plural } from './format.js';
import { get_deliveries, render_deliveries } from './deliveries.js';

const raw_limit = 2 << 20;

function safe_link(s) {
  try {
    const u = new URL(s);
    if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') return u.href;
  } catch {
    /* not a URL */
  }
  return null;
}

function ext_link(href, text) {
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, text);
}

// Turns text into text nodes and anchors for the http(s) URLs in it.
function linkify(text) {
  const out = [];
  const re = /\bhttps?:\/\/[^\s<>"'()]+[^\s<>"'().,;:!?]/g;
  let last = 0;
  let m;
  let n = 0;
  while ((m = re.exec(text)) && n++ < 5000) {
    const href = safe_link(m[0]);
    if (!href) continue;
    out.push(text.slice(last, m.index), ext_link(href, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

// A JSON value of unknown shape (the auth results) as nested definition lists.
function json_tree(v, depth = 0) {
  if (depth > 8) return h('span', {}, '…');
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (Array.isArray(v)) {
    if (v.length === 0) return h('span', { class: 'muted' }, 'none');
    return h('ol', { class: 'json-list' }, v.slice(0, 500).map((x) => h('li', {}, json_tree(x, depth + 1))));
  }
  if (typeof v === 'object') {
    const keys = Object.keys(v).slice(0, 500);
    if (keys.length === 0) return h('span', { class: 'muted' }, 'none');
    return h('dl', { class: 'json-obj' }, keys.map((k) => [h('dt', {}, k), h('dd', {}, json_tree(v[k], depth + 1))]));
  }
  const s = String(v);
  const cls = typeof v === 'boolean' || /^(pass|fail|softfail|neutral|none|temperror|permerror|policy)$/i.test(s)
    ? 'verdict verdict-' + s.toLowerCase()
    : null;
  return h('span', { class: cls }, s);
}

// The link check, on request only: it makes the server request every link of the message.
// Mailpit's LinkCheckResponse as a table; URLs are text, and anchors only for http(s).
function links_panel(id) {
  const follow = h('input', { type: 'checkbox', id: 'link-check-follow' });
  const status = h('p', { class: 'link-check-status', role: 'status' });
  const result = h('div', { class: 'link-check-result' });
  const run = async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    status.textContent = 'Checking links…';
    clear(result);
    try {
      const r = await api.link_check(id, follow.checked);
      const links = Array.isArray(r.Links) ? r.Links.slice(0, 1000) : [];
      const errors = Number(r.Errors) || 0;
      status.textContent = links.length
        ? `${plural(links.length, 'link')} checked: ${errors ? plural(errors, 'error') : 'no errors'}.`
        : 'This message has no links to check.';
      if (links.length) {
        const rows = links.map((l) => {
          const code = Number(l.StatusCode) || 0;
          const bad = code === 0 || code >= 400;
          const href = safe_link(String(l.URL || ''));
          return h('tr', { dataset: { bad: bad ? '1' : '0' } },
            h('td', { class: 'num' }, h('span', { class: 'delivery-status ' + (bad ? 'delivery-bad' : 'delivery-ok') }, code ? String(code) : '—')),
            h('td', {}, String(l.Status || '')),
            h('td', { class: 'link-url' }, href ? ext_link(href, String(l.URL)) : String(l.URL || '')));
        });
        result.append(h('div', { class: 'table-scroll' },
          h('table', { class: 'link-check' },
            h('caption', { class: 'visually-hidden' }, 'Links of this message and their HTTP status'),
            h('thead', {}, h('tr', {}, ['Status', 'Meaning', 'Link'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, rows))));
      }
    } catch (e) {
      status.textContent = `The link check failed: ${e.message || e}`;
    } finally {
      btn.disabled = false;
    }
  };
  return h('div', { class: 'links' }, [
    h('p', { class: 'muted' }, 'The server requests every link of this message (HEAD, then GET where HEAD is refused). Links to loopback and private addresses are refused unless the server allows them (link_check.allow_private).'),
    h('p', { class: 'panel-bar' }, [
      h('button', { type: 'button', class: 'btn', onclick: run }, 'Check links'),
      h('label', { for: 'link-check-follow' }, [follow, ' Follow redirects']),
    ]),
    status,
    result,
  ]);
}

// The server's HTML check texts (caniemail's Markdown rendered) hold only <code>, <strong>,
// <em> and <a href="…" target="_blank"> with everything else escaped; rebuilt here as
// elements from that subset, anything else stays text (nothing is parsed as HTML).
function check_text(s) {
  const decode = (t) => t.replace(/&(amp|lt|gt|quot|#39);/g, (_, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]);
  const root = h('span', {});
  const stack = [{ el: root, tag: '' }];
  const re = /<(\/?)(code|strong|em|a)(?: href="([^"<>]*)" target="_blank")?>/g;
  let last = 0;
  let m;
  while ((m = re.exec(s))) {
    stack[stack.length - 1].el.append(decode(s.slice(last, m.index)));
    last = m.index + m[0].length;
    const [, closing, tag, href] = m;
    if (closing) {
      // Matched by the tag it was opened as (a refused link is a <span>).
      if (stack.length > 1 && stack[stack.length - 1].tag === tag) stack.pop();
      continue;
    }
    const link = tag === 'a' ? safe_link(decode(href || '')) : null;
    const el = tag === 'a' ? (link ? ext_link(link, []) : h('span', {})) : h(tag, {});
    stack[stack.length - 1].el.append(el);
    stack.push({ el, tag });
  }
  stack[stack.length - 1].el.append(decode(s.slice(last)));
  return root;
}

const pct = (x) => `${(Number(x) || 0).toFixed(0)}%`;

// Support shares as a bar: supported, partial, unsupported.
function support_bar(score) {
  // Widths through the CSSOM: the UI's CSP (style-src 'self') refuses style attributes.
  const seg = (cls, v, label) => {
    const el = h('span', { class: `bar-seg ${cls}`, title: `${label} ${pct(v)}` });
    el.style.width = `${Math.max(0, Math.min(100, Number(v) || 0)).toFixed(2)}%`;
    return el;
  };
  return h('span', { class: 'support-bar', role: 'img', 'aria-label': `supported ${pct(score.Supported)}, partial ${pct(score.Partial)}, unsupported ${pct(score.Unsupported)}` },
    seg('bar-yes', score.Supported, 'supported'), seg('bar-partial', score.Partial, 'partial'), seg('bar-no', score.Unsupported, 'unsupported'));
}

// The HTML check (Mailpit's html-check): which HTML and CSS features this message uses and
// how many email clients support each, from caniemail.com's data. Computed by the server
// when the tab is first shown (no request leaves the server).
function html_check_panel(id) {
  const status = h('p', { class: 'html-check-status', role: 'status' }, 'Checking the HTML…');
  const result = h('div', { class: 'html-check-result' });
  api.html_check(id).then((r) => {
    const total = r.Total || {};
    const warnings = Array.isArray(r.Warnings) ? r.Warnings.slice(0, 500) : [];
    status.textContent = `${plural(Number(total.Nodes) || 0, 'element')}, ${plural(Number(total.Tests) || 0, 'test')}: ` +
      `supported ${pct(total.Supported)}, partial ${pct(total.Partial)}, unsupported ${pct(total.Unsupported)} ` +
      `(weighted by the worst feature, as Mailpit).`;
    result.append(h('p', {}, support_bar(total)));
    if (!warnings.length) {
      result.append(h('p', { class: 'muted' }, 'No features with a compatibility record were found.'));
      return;
    }
    const rows = warnings.map((w) => {
      const score = w.Score || {};
      const by = { no: [], partial: [] };
      for (const x of Array.isArray(w.Results) ? w.Results : []) {
        if (!by[x.Support]) continue;
        const note = x.NoteNumber && w.NotesByNumber ? w.NotesByNumber[x.NoteNumber] : '';
        by[x.Support].push(h('li', {}, String(x.Name || ''), note ? [' — ', check_text(String(note))] : null));
      }
      const link = safe_link(String(w.URL || ''));
      const details = h('details', {}, h('summary', {}, 'Clients'),
        by.no.length ? [h('h4', {}, `Not supported (${by.no.length})`), h('ul', {}, by.no)] : null,
        by.partial.length ? [h('h4', {}, `Partially supported (${by.partial.length})`), h('ul', {}, by.partial)] : null,
        by.no.length + by.partial.length ? null : h('p', { class: 'muted' }, 'Supported by every client tested.'));
      return h('tr', { dataset: { slug: String(w.Slug || '') } },
        h('td', {}, link ? ext_link(link, String(w.Title || w.Slug || '')) : String(w.Title || w.Slug || ''),
          h('div', { class: 'muted' }, check_text(String(w.Description || ''))), details),
        h('td', {}, String(w.Category || '')),
        h('td', { class: 'num' }, String(Number(score.Found) || 0)),
        h('td', { class: 'num' }, support_bar(score), ` ${pct(score.Supported)}`));
    });
    result.append(h('div', { class: 'table-scroll' },
      h('table', { class: 'link-check html-check' },
        h('caption', { class: 'visually-hidden' }, 'HTML and CSS features of this message and their support in email clients'),
        h('thead', {}, h('tr', {}, ['Feature', 'Category', 'Found', 'Supported'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))));
  }).catch((e) => {
    status.textContent = e && e.status === 404
      ? 'The HTML check is not available: the server has no caniemail data (scripts/install-deps.sh installs it).'
      : `The HTML check failed: ${(e && e.message) || e}`;
  });
  return h('div', { class: 'html-check' }, status, result);
}

// The sa-check result: verdict, score, matched rules; buttons to train the classifier.
function spam_panel(id, sa) {
  const score = typeof sa.Score === 'number' ? sa.Score.toFixed(1) : String(sa.Score);
  const status = h('p', { class: 'spam-train-status', role: 'status' });
  const train = (as) => async () => {
    status.textContent = 'Training…';
    try {
      const r = await api.train(id, as);
      status.textContent = `Learnt as ${as} (${r.Outcome}); the classifier now knows ${r.SpamMessages} spam and ${r.HamMessages} ham.`;
    } catch (e) {
      status.textContent = `Training failed: ${e.message || e}`;
    }
  };
  const rules = Array.isArray(sa.Rules) ? sa.Rules.slice(0, 500) : [];
  return h('div', { class: 'spam' }, [
    h('p', {}, [
      h('span', { class: 'verdict verdict-' + (sa.IsSpam ? 'fail' : 'pass') }, sa.IsSpam ? 'Spam' : 'Not spam'),
      ` score ${score}`,
    ]),
    sa.Error ? h('p', { class: 'spam-error' }, `Engine error: ${sa.Error}`) : null,
    rules.length
      ? h('table', { class: 'spam-rules' }, [
          h('thead', {}, h('tr', {}, [h('th', {}, 'Score'), h('th', {}, 'Rule'), h('th', {}, 'Description')])),
          h('tbody', {}, rules.map((r) => h('tr', {}, [
            h('td', { class: 'num' }, typeof r.Score === 'number' ? r.Score.toFixed(1) : String(r.Score)),
            h('td', {}, r.Name),
            h('td', {}, r.Description),
          ]))),
        ])
      : h('p', { class: 'muted' }, 'No rule matched.'),
    h('p', {}, [
      h('button', { type: 'button', class: 'btn', onclick: train('spam') }, 'Train as spam'),
      ' ',
      h('button', { type: 'button', class: 'btn', onclick: train('ham') }, 'Train as ham'),
    ]),
    status,
  ]);
}

export function render_message(main, ctx, m) {
  const st = ctx.state;
  const id = m.ID;
  const subject = m.Subject || '(no subject)';
  const d = parse_date(m.Date);
  const idx = st.list.messages.findIndex((x) => x.ID === id);
  const newer = idx > 0 ? st.list.messages[idx - 1] : null;
  const older = idx >= 0 && idx + 1 < st.list.messages.length ? st.list.messages[idx + 1] : null;

  const read_btn = h('button', { type: 'button', class: 'btn', onclick: () => ctx.toggle_read(id) });
  const set_read_label = () => {
    clear(read_btn).append(m.Read ? icon('mail') : icon('open'), h('span', { class: 'btn-label' }, m.Read ? 'Mark unread' : 'Mark read'));
  };
  set_read_label();

  const nav_btn = (target, label, ic) =>
    target
      ? h('a', { class: 'btn btn-icon', href: route_url({ name: 'view', id: target.ID }).href, dataset: { nav: '' }, 'aria-label': label, title: label }, icon(ic))
      : h('span', { class: 'btn btn-icon', 'aria-disabled': 'true', title: label }, icon(ic));

  const toolbar = h(
    'div',
    { class: 'view-toolbar', role: 'toolbar', 'aria-label': 'Message actions' },
    h('a', { class: 'btn', href: route_url(st.list.route).href, dataset: { nav: '', back: '' } }, icon('back'), h('span', { class: 'btn-label' }, 'Back')),
    read_btn,
    h('button', { type: 'button', class: 'btn btn-danger', onclick: () => ctx.delete_current(id) }, icon('trash'), h('span', { class: 'btn-label' }, 'Delete')),
    h('a', { class: 'btn', href: url(`api/v1/message/${encodeURIComponent(id)}/raw`, { dl: 1 }).href, download: `${id}.eml` }, icon('download'), h('span', { class: 'btn-label' }, 'Download .eml')),
    st.relay ? h('button', { type: 'button', class: 'btn', onclick: () => ctx.release(id) }, icon('send'), h('span', { class: 'btn-label' }, 'Release')) : null,
    h('span', { class: 'spacer' }),
  );
  const nav = h('span', { class: 'view-nav' });
  toolbar.append(nav);
  const set_neighbors = (n, o) => {
    handle.newer = n;
    handle.older = o;
    clear(nav).append(nav_btn(n, 'Newer message (k)', 'up'), nav_btn(o, 'Older message (j)', 'down'));
  };

  const rows = [];
  const add_row = (label, value, cls) => {
    if (value) rows.push(h('div', { class: 'hrow ' + (cls || '') }, h('dt', {}, label), h('dd', {}, value)));
  };
  add_row('From', addr_full(m.From));
  add_row('To', addr_list(m.To));
  add_row('Cc', addr_list(m.Cc));
  add_row('Bcc', addr_list(m.Bcc));
  add_row('Reply-To', addr_list(m.ReplyTo));
  add_row('Return-Path', m.ReturnPath);
  if (d) rows.push(h('div', { class: 'hrow' }, h('dt', {}, 'Date'), h('dd', {}, h('time', { datetime: m.Date }, abs_time(d)), h('span', { class: 'muted' }, ` (${rel_time(d)})`))));
  add_row('Size', size(m.Size));
  if (m.Username) add_row('User', m.Username);

  const unsub = render_unsubscribe(m.ListUnsubscribe);
  const tag_box = h('div', { class: 'tag-editor' });
  render_tags(tag_box, ctx, m);

  const notice = h('div', { class: 'banner banner-warn', hidden: true, role: 'alert' });

  const head = h('header', { class: 'msg-head' }, h('h1', { id: 'msg-subject', class: 'msg-subject' }, subject), h('dl', { class: 'hdrs' }, rows), tag_box, unsub);

  // Tabs.
  const inline = Array.isArray(m.Inline) ? m.Inline : [];
  const atts = Array.isArray(m.Attachments) ? m.Attachments : [];
  const tabs = [];
  if (m.HTML) tabs.push({ key: 'html', label: 'HTML', render: () => html_panel(id) });
  if (m.HTML) tabs.push({ key: 'source', label: 'HTML source', render: () => source_panel(m.HTML) });
  tabs.push({ key: 'text', label: 'Text', render: () => text_panel(m.Text) });
  tabs.push({ key: 'headers', label: 'Headers', render: () => headers_panel(id) });
  tabs.push({ key: 'raw', label: 'Raw', render: () => raw_panel(id) });
  if (m.HTML || m.Text) tabs.push({ key: 'links', label: 'Link check', render: () => links_panel(id) });
  if (m.HTML) tabs.push({ key: 'htmlcheck', label: 'HTML check', render: () => html_check_panel(id) });
  if (atts.length + inline.length) {
    tabs.push({ key: 'parts', label: `Attachments (${atts.length + inline.length})`, render: () => parts_panel(id, atts, inline) });
  }
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Message parts' });
  const panels = h('div', { class: 'panels' });
  const article = h('article', { class: 'msg-view', 'aria-labelledby': 'msg-subject' }, toolbar, notice, head, tablist, panels);

  const entries = new Map();
  const select = (key, focus) => {
    st.last_tab = key;
    for (const [k, e] of entries) {
      const on = k === key;
      e.tab.setAttribute('aria-selected', on ? 'true' : 'false');
      e.tab.tabIndex = on ? 0 : -1;
      if (on && !e.rendered) {
        e.rendered = true;
        e.panel.append(e.def.render());
      }
      e.panel.hidden = !on;
    }
    if (focus) entries.get(key).tab.focus();
  };
  const add_tab = (def) => {
    const tab = h('button', {
      type: 'button',
      role: 'tab',
      id: `tab-${def.key}`,
      class: 'tab',
      'aria-controls': `panel-${def.key}`,
      dataset: { tab: def.key },
      onclick: () => select(def.key, false),
    }, def.label);
    const panel = h('section', { role: 'tabpanel', id: `panel-${def.key}`, class: `panel panel-${def.key}`, 'aria-labelledby': `tab-${def.key}`, tabindex: '0', hidden: true });
    tablist.append(tab);
    panels.append(panel);
    entries.set(def.key, { def, tab, panel, rendered: false });
  };
  tabs.forEach(add_tab);
  tablist.addEventListener('keydown', (e) => {
    const keys = [...entries.keys()];
    const i = keys.indexOf(st.last_tab);
    let j = -1;
    if (e.key === 'ArrowRight') j = (i + 1) % keys.length;
    else if (e.key === 'ArrowLeft') j = (i - 1 + keys.length) % keys.length;
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = keys.length - 1;
    if (j >= 0) {
      e.preventDefault();
      select(keys[j], true);
    }
  });
  const late_tabs = ['auth', 'spam', 'deliveries'];
  const first = entries.has(st.last_tab) && !late_tabs.includes(st.last_tab) ? st.last_tab : m.HTML ? 'html' : 'text';
  select(first, false);

  clear(main).append(article);

  // The auth tab exists only when the server answers 200 for this message.
  const ac = new AbortController();
  api.get_auth(id, ac.signal).then((auth) => {
    if (!auth || !article.isConnected) return;
    add_tab({ key: 'auth', label: 'Authentication', render: () => h('div', { class: 'auth' }, json_tree(auth)) });
    entries.get('auth').panel.hidden = true;
    if (ctx.state.last_tab === 'auth') select('auth', false);
  });
  // The Deliveries tab (deliveries.js) exists only when the delivery log has entries.
  get_deliveries(id, ac.signal).then((log) => {
    if (!log.length || !article.isConnected || entries.has('deliveries')) return;
    const reload = () => get_deliveries(id, ac.signal);
    add_tab({ key: 'deliveries', label: `Deliveries (${log.length})`, render: () => render_deliveries(log, reload) });
    entries.get('deliveries').panel.hidden = true;
    if (ctx.state.last_tab === 'deliveries') select('deliveries', false);
  });

  // The spam tab, likewise, when a spam stage scanned the message.
  api.get_sa_check(id, ac.signal).then((sa) => {
    if (!sa || !article.isConnected) return;
    add_tab({ key: 'spam', label: 'Spam', render: () => spam_panel(id, sa) });
    entries.get('spam').panel.hidden = true;
    if (ctx.state.last_tab === 'spam') select('spam', false);
  });

  const handle = {
    id,
    article,
    set_neighbors,
    abort: () => ac.abort(),
    set_read(read) {
      m.Read = read;
      set_read_label();
    },
    set_tags(tags) {
      m.Tags = tags;
      render_tags(tag_box, ctx, m);
    },
    gone(text) {
      notice.hidden = false;
      notice.textContent = text;
      for (const b of toolbar.querySelectorAll('button')) b.disabled = true;
      for (const b of tag_box.querySelectorAll('button, input')) b.disabled = true;
    },
    newer: null,
    older: null,
  };
  set_neighbors(newer, older);
  return handle;
}

function render_unsubscribe(lu) {
  if (!lu || !lu.Header) return null;
  const links = Array.isArray(lu.Links) ? lu.Links : [];
  const items = links.map((l) => {
    const href = safe_link(l);
    return h('li', {}, href ? ext_link(href, l) : h('span', {}, l));
  });
  return h(
    'details',
    { class: 'unsub' },
    h('summary', {}, 'List-Unsubscribe', lu.HeaderPost ? h('span', { class: 'chip chip-ok' }, 'one-click (RFC 8058)') : null, lu.Errors ? h('span', { class: 'chip chip-warn' }, 'problems') : null),
    items.length ? h('ul', { class: 'unsub-links' }, items) : null,
    lu.Errors ? h('p', { class: 'warn' }, lu.Errors) : null,
    h('p', { class: 'muted' }, 'Header: ', h('code', {}, lu.Header)),
    lu.HeaderPost ? h('p', { class: 'muted' }, 'List-Unsubscribe-Post: ', h('code', {}, lu.HeaderPost)) : null,
  );
}

function render_tags(box, ctx, m) {
  const tags = Array.isArray(m.Tags) ? m.Tags : [];
  const save = (next) => ctx.save_tags(m.ID, next);
  const input = h('input', { type: 'text', list: 'tag-suggestions', maxlength: '100', placeholder: 'Add tag', 'aria-label': 'Add a tag', autocomplete: 'off' });
  const datalist = h('datalist', { id: 'tag-suggestions' }, ctx.state.tags.filter((t) => !tags.some((x) => x.toLowerCase() === t.toLowerCase())).map((t) => h('option', { value: t })));
  const form = h(
    'form',
    {
      class: 'tag-add',
      onsubmit: (e) => {
        e.preventDefault();
        // Mailpit's tag names: [A-Za-z0-9 ._@-]{1,100}; it turns other characters into spaces.
        const t = input.value.replace(/[^A-Za-z0-9 ._@-]/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 100);
        if (!t) return;
        if (!tags.some((x) => x.toLowerCase() === t.toLowerCase())) save([...tags, t]);
        input.value = '';
      },
    },
    input,
    datalist,
    h('button', { type: 'submit', class: 'btn btn-small' }, 'Add'),
  );
  clear(box).append(
    h('span', { class: 'tag-label' }, icon('tag'), h('span', { class: 'visually-hidden' }, 'Tags')),
    h(
      'ul',
      { class: 'tag-chips', 'aria-label': 'Tags' },
      tags.map((t) =>
        h('li', { class: 'chip chip-edit' }, h('span', {}, t), h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove tag ${t}`, onclick: () => save(tags.filter((x) => x !== t)) }, icon('x'))),
      ),
    ),
    form,
  );
}

function html_panel(id) {
  const src = url(`view/${encodeURIComponent(id)}.html`, { embed: 1 }).href;
  const frame = h('iframe', {
    class: 'html-frame',
    src,
    title: 'Message HTML body',
    // No allow-scripts and no allow-same-origin: the message runs nothing and reaches
    // nothing of the UI. allow-popups lets its links (target=_blank) open in a new tab.
    sandbox: 'allow-popups allow-popups-to-escape-sandbox',
    referrerpolicy: 'no-referrer',
    loading: 'eager',
  });
  const wrap = h('div', { class: 'frame-wrap', dataset: { width: 'full' } }, frame);
  const widths = [
    ['full', 'Full width'],
    ['tablet', 'Tablet (768 px)'],
    ['phone', 'Phone (375 px)'],
  ];
  const group = h('div', { class: 'seg', role: 'group', 'aria-label': 'Preview width' });
  for (const [w, label] of widths) {
    group.append(
      h('button', {
        type: 'button',
        class: 'btn btn-small',
        'aria-pressed': w === 'full' ? 'true' : 'false',
        onclick: (e) => {
          wrap.dataset.width = w;
          for (const b of group.children) b.setAttribute('aria-pressed', b === e.currentTarget ? 'true' : 'false');
        },
      }, label),
    );
  }
  return h(
    'div',
    { class: 'html-panel' },
    h('div', { class: 'panel-bar' }, group, h('a', { class: 'btn btn-small', href: url(`view/${encodeURIComponent(id)}.html`).href, target: '_blank', rel: 'noopener noreferrer' }, 'Open in new tab')),
    wrap,
  );
}

function wrap_toggle(pre) {
  return h('label', { class: 'wrap-toggle' }, h('input', { type: 'checkbox', checked: true, onchange: (e) => pre.classList.toggle('nowrap', !e.target.checked) }), ' Wrap lines');
}

function source_panel(html) {
  const pre = h('pre', { class: 'code' }, html);
  return h('div', {}, h('div', { class: 'panel-bar' }, wrap_toggle(pre)), pre);
}

function text_panel(text) {
  if (!text) return h('p', { class: 'muted empty' }, 'This message has no text part.');
  return h('pre', { class: 'text-body' }, linkify(text));
}

function loading() {
  return h('p', { class: 'muted loading' }, 'Loading…');
}

function fail(e) {
  return h('p', { class: 'error' }, `Could not load: ${e.message}`);
}

function headers_panel(id) {
  const box = h('div', {}, loading());
  api.get_headers(id).then(
    (hs) => {
      const rows = [];
      for (const [k, vs] of Object.entries(hs || {})) {
        for (const v of Array.isArray(vs) ? vs : [vs]) rows.push(h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, String(v))));
      }
      clear(box).append(rows.length ? h('table', { class: 'headers' }, h('caption', { class: 'visually-hidden' }, 'Message headers'), h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No headers.'));
    },
    (e) => clear(box).append(fail(e)),
  );
  return box;
}

function raw_panel(id) {
  const box = h('div', {}, loading());
  api.get_raw(id, raw_limit).then(
    ({ text, truncated }) => {
      const pre = h('pre', { class: 'code' }, text);
      clear(box).append(
        h('div', { class: 'panel-bar' }, wrap_toggle(pre), truncated ? h('span', { class: 'warn' }, `Showing the first ${size(raw_limit)}; download the .eml for all of it.`) : null),
        pre,
      );
    },
    (e) => clear(box).append(fail(e)),
  );
  return box;
}

function parts_panel(id, atts, inline) {
  const card = (p) => {
    const part_url = url(`api/v1/message/${encodeURIComponent(id)}/part/${encodeURIComponent(p.PartID)}`).href;
    const name = p.FileName || p.ContentID || `part ${p.PartID}`;
    const is_image = /^image\//i.test(p.ContentType || '');
    const sums = p.Checksums || {};
    return h(
      'li',
      { class: 'part' },
      is_image
        ? h('img', { class: 'thumb', src: `${part_url}/thumb`, alt: '', width: '180', height: '120', loading: 'lazy' })
        : h('div', { class: 'thumb thumb-file', 'aria-hidden': 'true' }, (name.split('.').pop() || 'file').slice(0, 5).toUpperCase()),
      h(
        'div',
        { class: 'part-info' },
        h('a', { class: 'part-name', href: part_url, download: p.FileName || '', title: name }, name),
        h('span', { class: 'muted' }, `${p.ContentType || 'application/octet-stream'} · ${size(p.Size)}`),
        p.ContentID ? h('span', { class: 'muted' }, `cid:${p.ContentID}`) : null,
        sums.SHA256 || sums.MD5
          ? h('details', { class: 'sums' }, h('summary', {}, 'Checksums'), h('dl', {}, ['MD5', 'SHA1', 'SHA256'].filter((k) => sums[k]).map((k) => [h('dt', {}, k), h('dd', {}, h('code', {}, sums[k]))])))
          : null,
      ),
    );
  };
  return h(
    'div',
    { class: 'parts' },
    atts.length ? [h('h2', {}, plural(atts.length, 'attachment')), h('ul', { class: 'part-grid' }, atts.map(card))] : null,
    inline.length ? [h('h2', {}, plural(inline.length, 'inline part')), h('ul', { class: 'part-grid' }, inline.map(card))] : null,
  );
}
