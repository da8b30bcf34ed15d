// mock-server.mjs — a stand-in for sluice's HTTP listener, for the web UI's browser tests.
//
// Serves plugins/http/webui at the web root and at /mailbox/{name}/ (with the <base href>
// rewrite and SPA fallback the real server does, see plugins/http/webui/README.md), and the
// parts of the Mailpit-compatible API the UI uses, with Mailpit's JSON shapes: messages,
// search, message, headers, raw, parts, thumbnails, view/{ID}.html, tags, send, mailboxes,
// webui, the Sluice auth endpoint, and the WebSocket api/events (`new`, `stats`, `update`,
// `delete`, `truncate`). Every response carries the strict CSP the UI must live under;
// violation reports are collected (POST /__csp-report). In memory, single-threaded (Node's
// event loop); bodies over 8 MB are refused with 413.
//
// Use: import { start_mock } from './mock-server.mjs'  or  node mock-server.mjs --port 8025 --seed

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const default_webui = path.resolve(process.env.SLUICE_WEBUI_DIR || path.join(here, '../../plugins/http/webui'));

export const ui_csp =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "frame-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; report-uri /__csp-report";
// Message HTML (inside the sandboxed iframe): its own inline styles, images from us.
const view_csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'; report-uri /__csp-report";

const mime_types = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon' };

// ---- tiny PNG encoder (for thumbnails and test images) ----------------------------------
const crc_table = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crc_table[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
export function png(w, h, pixel) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = pixel(x, y);
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = r;
      raw[o + 1] = g;
      raw[o + 2] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// ---- the store ----------------------------------------------------------------------------
const b62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function new_id() {
  const bytes = crypto.randomBytes(22);
  return Array.from(bytes, (b) => b62[b % 62]).join('');
}

function strip_html(s) {
  return s.replace(/<(style|script)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ').replace(/&nbsp;/g, ' ').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
function snippet_of(text, html) {
  const s = (text || strip_html(html || '')).replace(/\s+/g, ' ').trim();
  return s.length > 200 ? s.slice(0, 200) + '...' : s;
}
const fmt_addr = (a) => (a.Name ? `"${a.Name.replace(/"/g, '')}" <${a.Address}>` : `<${a.Address}>`);

// Builds a stored message from a Mailpit SendRequest (POST /api/v1/send). Throws a string
// (the 400 text) for what Mailpit refuses.
function from_send(req, created) {
  if (!req || typeof req !== 'object' || !req.From || typeof req.From.Email !== 'string' || !req.From.Email) throw 'From.Email is required';
  const conv = (x) => ({ Name: typeof x?.Name === 'string' ? x.Name : '', Address: String(x?.Email ?? '') });
  const id = new_id();
  const m = {
    ID: id,
    MessageID: `${id}@mock.sluice`,
    Read: false,
    From: conv(req.From),
    To: (req.To || []).map(conv),
    Cc: (req.Cc || []).map(conv),
    Bcc: (req.Bcc || []).map((a) => ({ Name: '', Address: String(a) })),
    ReplyTo: (req.ReplyTo || []).map(conv),
    ReturnPath: req.From.Email,
    Subject: String(req.Subject || ''),
    Created: created.toISOString(),
    Username: '',
    Tags: [...new Set((req.Tags || []).map(String))].sort(),
    Text: String(req.Text || ''),
    HTML: String(req.HTML || ''),
    headers_extra: req.Headers && typeof req.Headers === 'object' ? req.Headers : {},
    parts: [],
  };
  let n = 2;
  for (const a of req.Attachments || []) {
    const content = Buffer.from(String(a.Content || '').replace(/^data:[^,]*,/, ''), 'base64');
    m.parts.push({
      PartID: String(n++),
      FileName: String(a.Filename || ''),
      ContentType: String(a.ContentType || 'application/octet-stream'),
      ContentID: String(a.ContentID || ''),
      Size: content.length,
      content,
      inline: !!a.ContentID,
    });
  }
  m.raw = build_raw(m);
  m.Size = Buffer.byteLength(m.raw);
  const lu = m.headers_extra['List-Unsubscribe'];
  m.ListUnsubscribe = {
    Header: lu || '',
    Links: lu ? [...lu.matchAll(/<([^>]+)>/g)].map((x) => x[1]) : [],
    Errors: '',
    HeaderPost: m.headers_extra['List-Unsubscribe-Post'] || '',
  };
  return m;
}

function build_raw(m) {
  const hs = [];
  hs.push(['Return-Path', `<${m.ReturnPath}>`]);
  hs.push(['From', fmt_addr(m.From)]);
  if (m.To.length) hs.push(['To', m.To.map(fmt_addr).join(', ')]);
  if (m.Cc.length) hs.push(['Cc', m.Cc.map(fmt_addr).join(', ')]);
  if (m.ReplyTo.length) hs.push(['Reply-To', m.ReplyTo.map(fmt_addr).join(', ')]);
  hs.push(['Subject', m.Subject]);
  hs.push(['Date', new Date(m.Created).toUTCString().replace('GMT', '+0000')]);
  hs.push(['Message-ID', `<${m.MessageID}>`]);
  hs.push(['MIME-Version', '1.0']);
  if (m.Tags.length) hs.push(['X-Tags', m.Tags.join(', ')]);
  for (const [k, v] of Object.entries(m.headers_extra)) hs.push([k, String(v)]);
  const boundary = 'b-' + m.ID;
  hs.push(['Content-Type', `multipart/mixed; boundary="${boundary}"`]);
  m.header_list = hs;
  const body = [];
  if (m.Text) body.push(`--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${m.Text}\r\n`);
  if (m.HTML) body.push(`--${boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${m.HTML}\r\n`);
  for (const p of m.parts) {
    const b64 = p.content.toString('base64').replace(/.{76}/g, '$&\r\n');
    body.push(`--${boundary}\r\nContent-Type: ${p.ContentType}; name="${p.FileName}"\r\nContent-Transfer-Encoding: base64\r\n` + (p.ContentID ? `Content-ID: <${p.ContentID}>\r\nContent-Disposition: inline\r\n` : `Content-Disposition: attachment; filename="${p.FileName}"\r\n`) + `\r\n${b64}\r\n`);
  }
  body.push(`--${boundary}--\r\n`);
  return hs.map(([k, v]) => `${k}: ${v}`).join('\r\n') + '\r\n\r\n' + body.join('');
}

const sums = (buf) => ({
  MD5: crypto.createHash('md5').update(buf).digest('hex'),
  SHA1: crypto.createHash('sha1').update(buf).digest('hex'),
  SHA256: crypto.createHash('sha256').update(buf).digest('hex'),
});
const attachment_json = (p) => ({ PartID: p.PartID, FileName: p.FileName || p.ContentID, ContentType: p.ContentType, ContentID: p.ContentID, Size: p.Size, Checksums: sums(p.content) });
function summary_json(m, null_empty = true) {
  const l = (v) => (null_empty && v.length === 0 ? null : v);
  return {
    ID: m.ID, MessageID: m.MessageID, Read: m.Read, From: m.From, To: l(m.To), Cc: l(m.Cc), Bcc: l(m.Bcc), ReplyTo: l(m.ReplyTo),
    Subject: m.Subject, Created: m.Created, Username: m.Username, Tags: m.Tags, Size: m.Size,
    Attachments: m.parts.filter((p) => !p.inline).length, Snippet: snippet_of(m.Text, m.HTML),
  };
}
function message_json(m) {
  return {
    ID: m.ID, MessageID: m.MessageID, From: m.From, To: m.To, Cc: m.Cc, Bcc: m.Bcc, ReplyTo: m.ReplyTo, ReturnPath: m.ReturnPath,
    Subject: m.Subject, ListUnsubscribe: m.ListUnsubscribe, Date: m.Created, Tags: m.Tags, Username: m.Username,
    Text: m.Text, HTML: m.HTML, Size: m.Size,
    Inline: m.parts.filter((p) => p.inline).map(attachment_json),
    Attachments: m.parts.filter((p) => !p.inline).map(attachment_json),
  };
}

// A subset of Mailpit's search syntax, enough for the tests and manual use.
function tokenize(q) {
  return [...q.matchAll(/(-|!)?([a-z-]+:)?("[^"]*"|\S+)/gi)].map((t) => ({ neg: !!t[1], key: (t[2] || '').toLowerCase().slice(0, -1), val: t[3].replace(/^"|"$/g, '').toLowerCase() }));
}
function matches(m, q) {
  const addrs = (l) => l.map((a) => `${a.Name} ${a.Address}`).join(' ').toLowerCase();
  return tokenize(q).every(({ neg, key, val }) => {
    let r;
    switch (key) {
      case 'from': r = addrs([m.From]).includes(val); break;
      case 'to': r = addrs(m.To).includes(val); break;
      case 'subject': r = m.Subject.toLowerCase().includes(val); break;
      case 'tag': r = m.Tags.some((t) => t.toLowerCase() === val); break;
      case 'is': r = val === 'read' ? m.Read : val === 'unread' ? !m.Read : val === 'tagged' ? m.Tags.length > 0 : false; break;
      case 'has': r = val.startsWith('attachment') ? m.parts.some((p) => !p.inline) : val.startsWith('inline') ? m.parts.some((p) => p.inline) : false; break;
      default: r = `${addrs([m.From, ...m.To, ...m.Cc])} ${m.Subject} ${m.Text} ${strip_html(m.HTML)}`.toLowerCase().includes(key ? `${key}:${val}` : val);
    }
    return neg ? !r : r;
  });
}

class mailbox {
  constructor(name) {
    this.name = name;
    this.messages = []; // newest first
    this.sockets = new Set();
    this.stats_timer = null;
  }
  broadcast(Type, Data) {
    const s = JSON.stringify({ Type, Data });
    for (const ws of this.sockets) if (ws.readyState === 1) ws.send(s);
  }
  stats() {
    return { Total: this.messages.length, Unread: this.messages.filter((m) => !m.Read).length, Version: 'mock' };
  }
  changed() {
    if (this.stats_timer) return;
    this.stats_timer = setTimeout(() => {
      this.stats_timer = null;
      this.broadcast('stats', this.stats());
    }, 250);
  }
  add(m) {
    this.messages.unshift(m);
    this.broadcast('new', summary_json(m, false));
    this.changed();
  }
  find(id) {
    if (id === 'latest') return this.messages[0];
    return this.messages.find((m) => m.ID === id);
  }
  all_tags() {
    return [...new Set(this.messages.flatMap((m) => m.Tags))].sort((a, b) => a.localeCompare(b));
  }
}

// ---- HTTP -------------------------------------------------------------------------------
function read_body(req, limit = 8 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > limit) {
        reject(Object.assign(new Error('too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function start_mock({ port = 0, host = '127.0.0.1', webui = default_webui, mailboxes = ['default', 'team'], seed = false } = {}) {
  const boxes = new Map(mailboxes.map((n) => [n, new mailbox(n)]));
  const csp_reports = [];
  const requests = [];
  const auth_ids = new Set();
  const delivery_logs = new Map(); // message ID -> its delivery log entries
  let list_delay_ms = 0;

  function send(res, status, body, type = 'text/plain; charset=utf-8', extra = {}) {
    res.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': ui_csp, 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store', ...extra });
    res.end(body);
  }
  const json = (res, v) => send(res, 200, JSON.stringify(v), 'application/json; charset=utf-8');
  const ok = (res) => send(res, 200, 'ok');
  const not_found = (res) => send(res, 404, '404 page not found\n');

  function index(res, base) {
    const html = fs.readFileSync(path.join(webui, 'index.html'), 'utf8');
    // The contract (webui/README.md): {{base}} becomes the page's base, HTML-escaped; the
    // other placeholders the real server fills are filled too.
    const esc = (x) => x.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const fill = { base, webroot: '/', mailbox: base === '/' ? 'default' : decodeURIComponent(base.split('/')[2]), version: 'mock', label: 'mock', nonce: '' };
    send(res, 200, html.replace(/\{\{(base|webroot|mailbox|version|label|nonce)\}\}/g, (_, k) => esc(fill[k])), mime_types['.html']);
  }

  function static_file(res, rel) {
    if (!/^[A-Za-z0-9_\-/]+\.[a-z]+$/.test(rel) || rel.includes('..')) return not_found(res);
    const file = path.join(webui, rel);
    if (!file.startsWith(webui + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return not_found(res);
    send(res, 200, fs.readFileSync(file), mime_types[path.extname(file)] || 'application/octet-stream');
  }

  function list(res, box, msgs, start, limit) {
    start = Math.max(0, parseInt(start || '0', 10) || 0);
    limit = Math.max(1, Math.min(1000, parseInt(limit || '50', 10) || 50));
    const page = msgs.slice(start, start + limit);
    json(res, {
      total: box.messages.length,
      unread: box.messages.filter((m) => !m.Read).length,
      count: page.length,
      messages_count: msgs.length,
      messages_unread: msgs.filter((m) => !m.Read).length,
      start,
      tags: box.all_tags(),
      messages: page.map((m) => summary_json(m)),
    });
  }

  function set_read(box, ms, read) {
    for (const m of ms) {
      if (m.Read !== read) {
        m.Read = read;
        box.broadcast('update', { ID: m.ID, Read: read });
      }
    }
    box.changed();
  }

  function remove(box, ids) {
    const set = new Set(ids);
    box.messages = box.messages.filter((m) => {
      if (!set.has(m.ID)) return true;
      box.broadcast('delete', { ID: m.ID });
      return false;
    });
    box.changed();
  }

  async function api(req, res, box, base, rest, u) {
    const q = u.searchParams;
    const method = req.method;
    let mm;
    if (rest === 'api/v1/messages') {
      if (method === 'GET') {
        // The snapshot is taken now; delivering it late lets a test race events against it.
        const snapshot = box.messages.slice();
        if (list_delay_ms > 0) {
          const ms = list_delay_ms;
          list_delay_ms = 0;
          await new Promise((r) => setTimeout(r, ms));
        }
        return list(res, box, snapshot, q.get('start'), q.get('limit'));
      }
      const text = await read_body(req);
      let body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = null;
      }
      if (method === 'PUT') {
        if (!body || typeof body.Read !== 'boolean') return send(res, 400, 'invalid request');
        if (body.IDs && body.Search) return send(res, 400, 'You may only specify either IDs or Search');
        const ms = Array.isArray(body.IDs) && body.IDs.length ? box.messages.filter((m) => body.IDs.includes(m.ID)) : body.Search ? box.messages.filter((m) => matches(m, body.Search)) : box.messages;
        set_read(box, ms, body.Read);
        return ok(res);
      }
      if (method === 'DELETE') {
        if (body && Array.isArray(body.IDs) && body.IDs.length) remove(box, body.IDs);
        else {
          box.messages = [];
          box.broadcast('truncate', null);
          box.changed();
        }
        return ok(res);
      }
    }
    if (rest === 'api/v1/search') {
      const query = q.get('query') || '';
      if (!query.trim()) return send(res, 400, 'Error: no search query');
      const hits = box.messages.filter((m) => matches(m, query));
      if (method === 'GET') return list(res, box, hits, q.get('start'), q.get('limit'));
      if (method === 'DELETE') {
        remove(box, hits.map((m) => m.ID));
        return ok(res);
      }
    }
    if (rest === 'api/v1/send' && method === 'POST') {
      let body;
      try {
        body = JSON.parse(await read_body(req));
      } catch {
        return send(res, 400, JSON.stringify({ Error: 'invalid JSON' }), 'application/json');
      }
      try {
        const m = from_send(body, new Date());
        box.add(m);
        return json(res, { ID: m.ID });
      } catch (e) {
        return send(res, 400, JSON.stringify({ Error: String(e) }), 'application/json');
      }
    }
    if (rest === 'api/v1/tags') {
      if (method === 'GET') return json(res, box.all_tags());
      if (method === 'PUT') {
        let body;
        try {
          body = JSON.parse(await read_body(req));
        } catch {
          return send(res, 400, 'invalid JSON');
        }
        if (!Array.isArray(body?.IDs) || !Array.isArray(body?.Tags)) return send(res, 400, 'IDs and Tags are required');
        const tags = [...new Set(body.Tags.map((t) => String(t).replace(/[^A-Za-z0-9 ._@-]/g, ' ').trim()).filter(Boolean))].sort();
        for (const m of box.messages) {
          if (body.IDs.includes(m.ID)) {
            m.Tags = tags;
            box.broadcast('update', { ID: m.ID, Tags: tags });
          }
        }
        return ok(res);
      }
    }
    if (rest === 'api/v1/mailboxes' && method === 'GET') {
      return json(res, [...boxes.values()].map((b) => ({ Name: b.name, Total: b.messages.length, Unread: b.messages.filter((m) => !m.Read).length })));
    }
    if (rest === 'api/v1/webui' && method === 'GET') {
      return json(res, { Label: 'mock', MessageRelay: { Enabled: false, SMTPServer: '', ReturnPath: '', AllowedRecipients: '', BlockedRecipients: '', OverrideFrom: '', PreserveMessageIDs: false, RecipientAllowlist: '' }, SpamAssassin: false, ChaosEnabled: false, DuplicatesIgnored: false, HideDeleteAllButton: false });
    }
    if ((mm = /^api\/v1\/message\/([^/]+)(\/.*)?$/.exec(rest)) && method === 'GET') {
      const m = box.find(decodeURIComponent(mm[1]));
      if (!m) return not_found(res);
      const sub = mm[2] || '';
      if (sub === '') {
        set_read(box, [m], true);
        return json(res, message_json(m));
      }
      if (sub === '/headers') {
        const o = {};
        for (const [k, v] of m.header_list) {
          const ck = k.toLowerCase().replace(/(^|-)([a-z])/g, (_, a, b) => a + b.toUpperCase());
          (o[ck] ||= []).push(v);
        }
        return json(res, Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
      }
      if (sub === '/raw') {
        return send(res, 200, m.raw, 'text/plain; charset=utf-8', q.get('dl') === '1' ? { 'Content-Disposition': `attachment; filename="${m.ID}.eml"` } : {});
      }
      if (sub === '/auth') {
        if (!auth_ids.has(m.ID)) return not_found(res);
        return json(res, { SPF: { Result: 'pass', Domain: m.From.Address.split('@')[1] || '' }, DKIM: [{ Result: 'pass', Domain: 'shop.example', Selector: 's1' }], DMARC: { Result: 'pass', Policy: 'reject' } });
      }
      if (sub === '/link-check') {
        const follow = q.get('follow') === 'true' || q.get('follow') === '1';
        return json(res, {
          Errors: 2,
          Links: [
            { URL: 'https://shop.example/ok', StatusCode: 200, Status: 'OK' },
            { URL: 'https://shop.example/old', StatusCode: follow ? 200 : 301, Status: follow ? 'OK' : 'Moved Permanently' },
            { URL: 'https://shop.example/missing', StatusCode: 404, Status: 'Not Found' },
            { URL: 'http://127.0.0.1/<b>x</b>', StatusCode: 0, Status: 'cannot connect to 127.0.0.1 port 80: Connection refused' },
          ],
        });
      }
      if (sub === '/html-check') {
        if (!m.HTML) return send(res, 400, 'message does not contain HTML', 'text/plain; charset=utf-8');
        const result = (Family, Platform, Version, Support, NoteNumber = '') => ({ Name: `${Family} ${Platform} (${Version})`, Family, Platform, Version, Support, NoteNumber });
        return json(res, {
          Platforms: { windows: ['Outlook'], 'desktop-webmail': ['Gmail'] },
          Total: { Nodes: 12, Tests: 160, Supported: 80, Partial: 5, Unsupported: 15 },
          Warnings: [
            {
              Slug: 'html-style', Title: '<style> element', URL: 'https://www.caniemail.com/features/html-style/', Category: 'html', Tags: [], Keywords: '',
              Description: 'Use of a <code>&lt;style&gt;</code> element. <img src=x onerror=alert(7)> <b>bold</b>',
              Results: [result('gmail', 'desktop-webmail', '2020-01', 'yes'), result('outlook', 'windows', '2019', 'partial', '1')],
              NotesByNumber: { 1: 'Only in the <strong>head</strong>.' },
              Score: { Found: 1, Supported: 50, Partial: 50, Unsupported: 0 },
            },
            {
              Slug: 'css-display-flex', Title: 'display:flex', URL: 'javascript:alert(8)', Category: 'css', Tags: [], Keywords: '',
              Description: 'See <a href="https://www.caniemail.com/" target="_blank">caniemail</a>, <a href="javascript:alert(9)" target="_blank">not a link</a> and <code>tail</code>.',
              Results: [result('outlook', 'windows', '2019', 'no')], NotesByNumber: {},
              Score: { Found: 2, Supported: 0, Partial: 0, Unsupported: 100 },
            },
          ],
        });
      }
      if (sub === '/deliveries') {
        return json(res, { ID: m.ID, Deliveries: delivery_logs.get(m.ID) || [] });
      }
      const pm = /^\/part\/([^/]+)(\/thumb)?$/.exec(sub);
      if (pm) {
        const p = m.parts.find((x) => x.PartID === decodeURIComponent(pm[1]));
        if (!p) return not_found(res);
        if (pm[2]) return send(res, 200, png(180, 120, (x, y) => [40 + x, 90 + y, 200]), 'image/png');
        return send(res, 200, p.content, p.ContentType, { 'Content-Disposition': `inline; filename="${(p.FileName || 'part').replace(/"/g, '')}"` });
      }
      return not_found(res);
    }
    if ((mm = /^view\/([^/]+)\.(html|txt)$/.exec(rest)) && method === 'GET') {
      const m = box.find(decodeURIComponent(mm[1]));
      if (!m) return not_found(res);
      set_read(box, [m], true);
      if (mm[2] === 'txt') return send(res, 200, m.Text, 'text/plain; charset=utf-8');
      if (!m.HTML) return not_found(res);
      let html = m.HTML.replace(/cid:([^"'\s>]+)/g, (all, cid) => {
        const p = m.parts.find((x) => x.ContentID === cid);
        return p ? `${base}api/v1/message/${m.ID}/part/${p.PartID}` : all;
      });
      if (q.get('embed') === '1') html = html.replace(/<a\s/gi, '<a target="_blank" rel="noreferrer noopener" ');
      return send(res, 200, html, 'text/html; charset=utf-8', { 'Content-Security-Policy': view_csp });
    }
    return null;
  }

  const server = http.createServer(async (req, res) => {
    try {
      const u = new URL(req.url, 'http://x');
      requests.push({ method: req.method, path: u.pathname, search: u.search });
      if (u.pathname === '/__csp-report' && req.method === 'POST') {
        csp_reports.push(await read_body(req, 1 << 20));
        return send(res, 204, '');
      }
      let box = boxes.get('default');
      let base = '/';
      let rest = u.pathname.slice(1);
      const mb = /^\/mailbox\/([^/]+)\/(.*)$/.exec(u.pathname);
      if (mb) {
        box = boxes.get(decodeURIComponent(mb[1]));
        if (!box) return not_found(res);
        base = `/mailbox/${mb[1]}/`;
        rest = mb[2];
      }
      if (req.method === 'GET' && (rest === '' || rest === 'index.html' || rest === 'search' || /^view\/[^/.]+$/.test(rest))) return index(res, base);
      if (rest.startsWith('api/') || rest.startsWith('view/')) {
        const r = await api(req, res, box, base, rest, u);
        if (r === null && !res.headersSent) not_found(res);
        return;
      }
      if (req.method === 'GET') return static_file(res, rest);
      return send(res, 405, 'Method Not Allowed\n');
    } catch (e) {
      if (!res.headersSent) send(res, e.status || 500, e.status ? 'request body too large\n' : `mock error: ${e.message}\n`);
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 10 });
  server.on('upgrade', (req, socket, head) => {
    const u = new URL(req.url, 'http://x');
    const mb = /^\/mailbox\/([^/]+)\/api\/events$/.exec(u.pathname);
    const box = u.pathname === '/api/events' ? boxes.get('default') : mb ? boxes.get(decodeURIComponent(mb[1])) : null;
    if (!box) return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => {
      box.sockets.add(ws);
      ws.on('close', () => box.sockets.delete(ws));
      ws.send(JSON.stringify({ Type: 'stats', Data: box.stats() }));
    });
  });

  await new Promise((resolve) => server.listen(port, host, resolve));
  const addr = server.address();
  const handle = {
    url: `http://${host}:${addr.port}/`,
    boxes,
    csp_reports,
    requests,
    // Marks a message so that GET api/v1/message/{ID}/auth answers 200.
    enable_auth: (id) => auth_ids.add(id),
    // Sets the delivery log that GET api/v1/message/{ID}/deliveries answers (default: []).
    set_deliveries: (id, list) => delivery_logs.set(id, list),
    // Closes every WebSocket (the UI must reconnect).
    drop_sockets: () => {
      for (const b of boxes.values()) for (const ws of b.sockets) ws.terminate();
    },
    // Sends an event to every WebSocket of a mailbox.
    broadcast: (name, type, data) => boxes.get(name)?.broadcast(type, data),
    // Delays the answer to the next GET api/v1/messages (its content is taken on arrival).
    delay_next_list: (ms) => {
      list_delay_ms = ms;
    },
    socket_count: () => [...boxes.values()].reduce((n, b) => n + b.sockets.size, 0),
    close: () =>
      new Promise((resolve) => {
        for (const b of boxes.values()) {
          clearTimeout(b.stats_timer);
          for (const ws of b.sockets) ws.terminate();
        }
        wss.close();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
  if (seed) seed_demo(boxes);
  return handle;
}

// Demo content for manual runs (node mock-server.mjs --seed).
export function demo_messages() {
  const logo = png(64, 64, (x, y) => ((x >> 3) + (y >> 3)) % 2 ? [31, 111, 235] : [255, 255, 255]).toString('base64');
  return [
    { From: { Email: 'build@ci.example', Name: 'CI Bot' }, To: [{ Email: 'dev@team.example' }], Subject: 'Build #4821 passed on main', Text: 'All 1,204 tests passed in 3m 12s.\nhttps://ci.example/builds/4821', Tags: ['ci'] },
    { From: { Email: 'billing@shop.example', Name: 'Shop Billing' }, To: [{ Email: 'alice@example.com', Name: 'Alice Example' }], Subject: 'Your invoice #2026-1142', HTML: '<html><body style="font-family:sans-serif"><img src="cid:logo@shop" alt="Shop" width="64"><h1>Invoice #2026-1142</h1><p>Amount due: <b>€ 42.00</b></p><p><a href="https://shop.example/pay">Pay now</a></p></body></html>', Text: 'Invoice #2026-1142\nAmount due: EUR 42.00', Tags: ['billing'], Attachments: [{ Filename: 'invoice-2026-1142.pdf', ContentType: 'application/pdf', Content: Buffer.from('%PDF-1.4 mock').toString('base64') }, { Filename: 'logo.png', ContentType: 'image/png', ContentID: 'logo@shop', Content: logo }] },
    { From: { Email: 'news@weekly.example', Name: 'The Weekly' }, To: [{ Email: 'alice@example.com' }], Subject: 'This week: faster mail testing', HTML: '<h2>Issue 37</h2><p>Five tips for testing transactional mail.</p>', Text: 'Issue 37\nFive tips for testing transactional mail.', Headers: { 'List-Unsubscribe': '<https://weekly.example/unsub?u=abc>, <mailto:unsub@weekly.example?subject=unsubscribe>', 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }, Tags: ['newsletter'] },
    { From: { Email: 'evil@attacker.example', Name: '<script>alert(1)</script>' }, To: [{ Email: 'bob@example.com' }], Subject: '<img src=x onerror=alert(1)> "quotes" & <b>tags</b>', HTML: '<p>Hi <script>alert(2)</script><img src=x onerror="alert(3)"></p>', Text: 'Escaping test' },
    { From: { Email: 'noreply@app.example', Name: 'App' }, To: [{ Email: 'bob@example.com', Name: 'Bob' }], Cc: [{ Email: 'audit@app.example' }], Subject: 'Reset your password', Text: 'Someone asked to reset the password of your account.\nUse this link within 30 minutes: https://app.example/reset?t=1234\n\nIf it was not you, ignore this mail.', Tags: ['auth', 'Important'] },
  ];
}

function seed_demo(boxes) {
  const def = boxes.get('default');
  const now = Date.now();
  const list = demo_messages();
  list.forEach((req, i) => {
    const m = from_send(req, new Date(now - (list.length - i) * 47 * 60 * 1000));
    if (i < 2) m.Read = true;
    def.messages.unshift(m);
  });
  const team = boxes.get('team');
  if (team) team.messages.unshift(from_send({ From: { Email: 'lead@team.example', Name: 'Team Lead' }, To: [{ Email: 'team@example.com' }], Subject: 'Stand-up notes', Text: 'Notes attached.' }, new Date(now - 3600e3)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? parseInt(process.argv[i + 1], 10) : 8025;
  const h = await start_mock({ port, seed: process.argv.includes('--seed') });
  console.log(`mock sluice UI server on ${h.url} (also ${h.url}mailbox/team/)`);
}
