// dom.js — building DOM nodes without HTML strings.
//
// Everything the UI shows comes from mail senders (subjects, addresses, file names, headers),
// so nothing is ever parsed as HTML: h() makes elements and puts strings in as text nodes.
// There is no innerHTML anywhere in the UI; message HTML only goes into a sandboxed iframe.

const svg_ns = 'http://www.w3.org/2000/svg';

// h('a', {href, class, onclick, dataset: {...}, aria-label: ...}, child, ...)
// Children: strings/numbers (text), nodes, arrays, null/false (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  set_attrs(el, attrs);
  append(el, children);
  return el;
}

function set_attrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value' || k === 'checked' || k === 'indeterminate') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Icons as SVG elements (paths from our own drawing, 24×24 grid, stroked).
const icon_paths = {
  clip: 'M21 11.5l-8.5 8.5a5 5 0 0 1-7-7L14 4.5a3.3 3.3 0 0 1 4.7 4.7l-8.4 8.4a1.6 1.6 0 0 1-2.3-2.3L15.5 7.8',
  back: 'M15 5l-7 7 7 7',
  up: 'M6 15l6-6 6 6',
  down: 'M6 9l6 6 6-6',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6',
  mail: 'M3 6h18v12H3zM3 6l9 7 9-7',
  open: 'M3 10l9-6 9 6v9H3zM3 10l9 6 9-6',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  x: 'M6 6l12 12M18 6L6 18',
  tag: 'M3 12V4h8l10 10-8 8zM7.5 8.5h.01',
  refresh: 'M20 11a8 8 0 1 0-2.3 5.7M20 5v6h-6',
  send: 'M3 11l18-8-8 18-2-8zM11 13l10-10',
};

export function icon(name, label) {
  const s = document.createElementNS(svg_ns, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('class', 'icon');
  s.setAttribute('focusable', 'false');
  if (label) {
    s.setAttribute('role', 'img');
    s.setAttribute('aria-label', label);
    const t = document.createElementNS(svg_ns, 'title');
    t.textContent = label;
    s.appendChild(t);
  } else {
    s.setAttribute('aria-hidden', 'true');
  }
  const p = document.createElementNS(svg_ns, 'path');
  p.setAttribute('d', icon_paths[name]);
  s.appendChild(p);
  return s;
}
