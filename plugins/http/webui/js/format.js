// format.js — dates, sizes and addresses as text (never HTML).

const abs_fmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const day_fmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const year_fmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const time_fmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function parse_date(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function abs_time(d) {
  return d ? abs_fmt.format(d) : '';
}

// "just now", "5 min ago", "3 h ago", "14:05" yesterday… then "Dec 1" or "Dec 1, 2025".
export function rel_time(d, now = new Date()) {
  if (!d) return '';
  const s = Math.round((now - d) / 1000);
  if (s < 45 && s > -60) return 'just now';
  if (s >= 0 && s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s >= 0 && s < 6 * 3600) return `${Math.round(s / 3600)} h ago`;
  if (d.toDateString() === now.toDateString()) return time_fmt.format(d);
  if (d.getFullYear() === now.getFullYear()) return `${day_fmt.format(d)}, ${time_fmt.format(d)}`;
  return year_fmt.format(d);
}

export function size(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function addr_name(a) {
  if (!a) return '';
  return (a.Name || '').trim() || a.Address || '';
}

export function addr_full(a) {
  if (!a) return '';
  const name = (a.Name || '').trim();
  if (name && a.Address) return `${name} <${a.Address}>`;
  return name || a.Address || '';
}

export function addr_list(list) {
  return Array.isArray(list) ? list.map(addr_full).filter(Boolean).join(', ') : '';
}

export function plural(n, one, many = one + 's') {
  return `${n} ${n === 1 ? one : many}`;
}

// A search term for a tag: tag:name, quoted when it holds spaces or quotes.
export function tag_query(t) {
  return /[\s"]/.test(t) ? `tag:"${t.replace(/"/g, '')}"` : `tag:${t}`;
}
