// deliveries.js — the "Deliveries" tab of the message view: the delivery log of the
// message's deferred stages (relay, webhook), from GET <base>api/v1/message/{ID}/deliveries
// ({"ID", "Deliveries": [{Time, Stage, Pipeline, Attempt, Status, Reply, NextAttempt,
// Details}]}, oldest first). The tab is shown only when the log has entries.
//
// Everything in the log comes from remote servers (replies) or stage reports (details), so it
// is shown as text only (dom.js never parses HTML). Details are arbitrary JSON: shown
// pretty-printed, cut at a bound.

import { h, clear } from './dom.js';
import { url } from './base.js';
import { parse_date, abs_time, rel_time } from './format.js';

const timeout_ms = 30000;
const max_rows = 500;
const max_details = 4000;

// The log's entries, or [] when the server has none or answers anything but 200 with JSON
// (a server without the endpoint, an unknown message): the tab then stays hidden.
export async function get_deliveries(id, signal) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout_ms);
  const onabort = () => ctl.abort();
  signal?.addEventListener('abort', onabort, { once: true });
  try {
    const res = await fetch(url(`api/v1/message/${encodeURIComponent(id)}/deliveries`), {
      signal: ctl.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (!res.ok) return [];
    const body = await res.json();
    return Array.isArray(body?.Deliveries) ? body.Deliveries : [];
  } catch {
    return [];
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onabort);
  }
}

const status_class = {
  done: 'delivery-ok',
  retry: 'delivery-warn',
  failed: 'delivery-bad',
  expired: 'delivery-bad',
};

function when(s) {
  const d = parse_date(s);
  if (!d) return s ? String(s) : '';
  return h('time', { datetime: d.toISOString(), title: abs_time(d) }, `${abs_time(d)} (${rel_time(d)})`);
}

function details_cell(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object' && Object.keys(v).length === 0) return '';
  let s;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
  } catch {
    s = String(v);
  }
  if (s.length > max_details) s = s.slice(0, max_details) + '…';
  return h('details', {}, h('summary', {}, 'Details'), h('pre', { class: 'delivery-details' }, s));
}

function summary_line(list) {
  const last = list[list.length - 1];
  const st = String(last.Status || '');
  const text = {
    done: 'Delivered',
    retry: 'Waiting for the next attempt',
    failed: 'Failed',
    expired: 'Given up (retry lifetime expired)',
  }[st] || st;
  const next = st === 'retry' && parse_date(last.NextAttempt);
  return h('p', { class: 'delivery-summary' },
    h('span', { class: 'delivery-status ' + (status_class[st] || '') }, text),
    ` — last attempt ${last.Attempt ?? '?'} of stage ${last.Stage || '?'}`,
    next ? `, next ${abs_time(next)} (${rel_time(next)})` : '');
}

// The panel for a non-empty log; `reload` (optional) fetches it again and re-renders.
export function render_deliveries(list, reload) {
  const box = h('div', { class: 'deliveries' });
  const fill = (entries) => {
    const rows = entries.slice(-max_rows).map((e) => {
      const st = String(e.Status || '');
      return h('tr', { dataset: { status: st } },
        h('td', {}, when(e.Time)),
        h('td', {}, String(e.Stage || '')),
        h('td', {}, String(e.Pipeline || '')),
        h('td', { class: 'num' }, String(e.Attempt ?? '')),
        h('td', {}, h('span', { class: 'delivery-status ' + (status_class[st] || '') }, st)),
        h('td', { class: 'delivery-reply' }, String(e.Reply || '')),
        h('td', {}, e.NextAttempt ? when(e.NextAttempt) : h('span', { class: 'muted' }, '—')),
        h('td', {}, details_cell(e.Details)));
    });
    const head = ['Time', 'Stage', 'Pipeline', 'Attempt', 'Status', 'Reply', 'Next attempt', 'Details'].map((t) => h('th', { scope: 'col' }, t));
    const bar = reload
      ? h('div', { class: 'panel-bar' }, h('button', {
        type: 'button',
        class: 'btn btn-small',
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          const fresh = await reload();
          fill(fresh.length ? fresh : entries);
        },
      }, 'Refresh'))
      : null;
    clear(box).append(
      bar,
      entries.length ? summary_line(entries) : null,
      h('div', { class: 'table-scroll' },
        h('table', { class: 'delivery-log' },
          h('caption', { class: 'visually-hidden' }, 'Delivery attempts, oldest first'),
          h('thead', {}, h('tr', {}, head)),
          h('tbody', {}, rows))));
  };
  fill(list);
  return box;
}
