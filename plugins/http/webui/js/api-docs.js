// api-docs.js — the API reference page (<base>api/v1/): the server's OpenAPI document
// (<base>api/v1/swagger.json) as a list of operations by tag, each with its parameters,
// request body and responses, and the schemas they name. GET operations can be tried from
// the page (the answer is shown as text); for the others a curl command line is given.
//
// The document is the server's own, but its texts are shown as text all the same (dom.js
// never parses HTML).

import { h, clear, append } from './dom.js';
import { url } from './base.js';

const max_answer = 200000;
const methods = ['get', 'put', 'post', 'delete', 'patch'];

const ref_name = (ref) => String(ref || '').replace('#/components/schemas/', '');
const anchor = (s) => String(s).replace(/[^A-Za-z0-9_-]+/g, '-');

// A schema in one line: a link for a $ref, "array of X", the type with its enum or format.
function type_of(s) {
  if (!s || typeof s !== 'object') return '';
  if (s.$ref) return h('a', { href: '#schema-' + anchor(ref_name(s.$ref)) }, ref_name(s.$ref));
  if (s.type === 'array') return ['array of ', type_of(s.items)];
  if (Array.isArray(s.oneOf)) return s.oneOf.map((x, i) => [i ? ' or ' : '', type_of(x)]);
  let t = s.type || 'any';
  if (s.format) t += ` (${s.format})`;
  if (Array.isArray(s.enum)) t += ': ' + s.enum.map(String).join(' | ');
  return t;
}

function params_table(params) {
  if (!params.length) return null;
  return h('table', { class: 'docs-table' },
    h('thead', {}, h('tr', {}, ['Parameter', 'In', 'Type', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, params.map((p) => h('tr', {},
      h('td', {}, h('code', {}, String(p.name)), p.required ? h('span', { class: 'docs-required', title: 'required' }, ' *') : null),
      h('td', {}, String(p.in || '')),
      h('td', {}, type_of(p.schema)),
      h('td', {}, String(p.description || ''))))));
}

function content_types(content) {
  return Object.entries(content || {}).map(([type, c]) => h('div', {}, h('code', {}, type), ' ', type_of(c.schema)));
}

// The request form of a GET operation: its path and query parameters, Send, the answer.
function try_form(path, params) {
  const inputs = new Map();
  const fields = params.filter((p) => p.in === 'path' || p.in === 'query').map((p) => {
    const id = 'try-' + anchor(path) + '-' + anchor(p.name);
    const input = h('input', { id, type: 'text', name: p.name, placeholder: p.in === 'path' ? 'required' : '', autocomplete: 'off', spellcheck: 'false' });
    inputs.set(p, input);
    return h('label', { for: id, class: 'docs-field' }, h('span', {}, p.name), input);
  });
  const out = h('pre', { class: 'docs-answer', hidden: true });
  const status = h('p', { class: 'docs-status', role: 'status' });
  const send = async (ev) => {
    const btn = ev.currentTarget;
    let rel = path.replace(/^\//, '');
    const query = {};
    for (const [p, input] of inputs) {
      const v = input.value.trim();
      if (p.in === 'path') {
        if (!v) {
          status.textContent = `${p.name} is required.`;
          input.focus();
          return;
        }
        rel = rel.replace('{' + p.name + '}', encodeURIComponent(v));
      } else if (v) {
        query[p.name] = v;
      }
    }
    btn.disabled = true;
    status.textContent = 'Sending…';
    try {
      const res = await fetch(url(rel, query), { credentials: 'same-origin', cache: 'no-store' });
      let text = await res.text();
      if ((res.headers.get('content-type') || '').includes('json')) {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch {
          /* shown as sent */
        }
      }
      if (text.length > max_answer) text = text.slice(0, max_answer) + '\n…';
      status.textContent = `${res.status} ${res.statusText} — ${res.headers.get('content-type') || 'no type'}`;
      out.textContent = text;
      out.hidden = false;
    } catch (e) {
      status.textContent = `The request failed: ${e.message || e}`;
    } finally {
      btn.disabled = false;
    }
  };
  return h('div', { class: 'docs-try' }, fields,
    h('button', { type: 'button', class: 'btn btn-small', onclick: send }, 'Send request'), status, out);
}

function curl_line(method, path, op) {
  const target = new URL(path.replace(/^\//, ''), url('./')).href;
  let line = `curl -X ${method.toUpperCase()} '${target}'`;
  const body = op.requestBody?.content?.['application/json'];
  if (body) line += ` -H 'Content-Type: application/json' -d '{…}'`;
  return h('pre', { class: 'docs-curl' }, line);
}

function operation(method, path, op, shared) {
  const params = [...(shared || []), ...(op.parameters || [])];
  const id = 'op-' + anchor(op.operationId || method + path);
  const responses = Object.entries(op.responses || {});
  return h('section', { class: 'docs-op', id, 'aria-labelledby': id + '-h' },
    h('h3', { id: id + '-h' }, h('span', { class: 'docs-method docs-' + method }, method.toUpperCase()), ' ', h('code', {}, path),
      op.summary ? h('span', { class: 'docs-summary' }, ' — ' + op.summary) : null),
    op.description ? h('p', {}, String(op.description)) : null,
    params_table(params),
    op.requestBody ? h('div', { class: 'docs-body' }, h('h4', {}, 'Request body'), content_types(op.requestBody.content)) : null,
    responses.length
      ? h('div', {}, h('h4', {}, 'Responses'), h('table', { class: 'docs-table' },
        h('tbody', {}, responses.map(([code, r]) => h('tr', {},
          h('td', {}, h('code', {}, code)),
          h('td', {}, String(r.description || '')),
          h('td', {}, content_types(r.content)))))))
      : null,
    method === 'get' ? h('details', {}, h('summary', {}, 'Try it'), try_form(path, params)) : curl_line(method, path, op));
}

function schema_section(name, s) {
  const props = Object.entries(s.properties || {});
  const required = new Set(s.required || []);
  return h('section', { class: 'docs-schema', id: 'schema-' + anchor(name) },
    h('h3', {}, name, s.type && s.type !== 'object' ? h('span', { class: 'docs-summary' }, ' — ', type_of(s)) : null),
    s.description ? h('p', {}, String(s.description)) : null,
    props.length
      ? h('table', { class: 'docs-table' },
        h('thead', {}, h('tr', {}, ['Field', 'Type', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, props.map(([k, v]) => h('tr', {},
          h('td', {}, h('code', {}, k), required.has(k) ? h('span', { class: 'docs-required', title: 'required' }, ' *') : null),
          h('td', {}, type_of(v)),
          h('td', {}, String(v.description || ''))))))
      : null);
}

async function main() {
  const root = document.getElementById('docs');
  let doc;
  try {
    const res = await fetch(url('api/v1/swagger.json'), { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    doc = await res.json();
  } catch (e) {
    clear(root).append(h('p', { class: 'banner banner-warn', role: 'alert' }, `The API description could not be loaded: ${e.message || e}`));
    root.removeAttribute('aria-busy');
    return;
  }
  const by_tag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of methods) {
      const op = item[m];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!by_tag.has(tag)) by_tag.set(tag, []);
      by_tag.get(tag).push(operation(m, path, op, item.parameters));
    }
  }
  const schemas = Object.entries(doc.components?.schemas || {});
  const toc = h('nav', { class: 'docs-toc', 'aria-label': 'Contents' }, h('ul', {},
    [...by_tag.keys()].map((t) => h('li', {}, h('a', { href: '#tag-' + anchor(t) }, t))),
    schemas.length ? h('li', {}, h('a', { href: '#schemas' }, 'schemas')) : null));
  append(clear(root), [
    h('h1', {}, String(doc.info?.title || 'API')),
    doc.info?.description ? h('p', {}, String(doc.info.description)) : null,
    h('p', {}, 'The machine-readable description: ', h('a', { href: url('api/v1/swagger.json').href }, 'api/v1/swagger.json'), ` (OpenAPI ${doc.openapi || ''}).`),
    toc,
    [...by_tag.entries()].map(([t, ops]) => h('section', { class: 'docs-tag', id: 'tag-' + anchor(t) }, h('h2', {}, t), ops)),
    schemas.length ? h('section', { id: 'schemas' }, h('h2', {}, 'Schemas'), schemas.map(([n, s]) => schema_section(n, s))) : null,
  ]);
  root.removeAttribute('aria-busy');
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

main();
