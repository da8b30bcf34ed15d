// ui-test.mjs — browser test of the Sluice web UI (plugins/http/webui).
//
// Drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) with playwright-core against
// a server speaking the Mailpit-compatible API: by default the mock (mock-server.mjs),
// started here on 127.0.0.1 port 0; or a real sluice when SLUICE_UI_BASES lists its base
// URLs (comma-separated, e.g. "http://127.0.0.1:8025/,http://127.0.0.1:8025/mailbox/team/").
// Each base is WIPED (DELETE api/v1/messages) and seeded through POST api/v1/send.
//
// Checks per base: list and paging, a `new` event shows up live (no reload), reconnect
// after a dropped WebSocket (mock only), message view (sandboxed iframe, tabs, parts,
// thumbnails, auth tab iff the server answers 200), tag editing, mark unread, delete,
// search (request and results, deep link), escaping of hostile subjects/names, keyboard,
// delete all; no console errors, page errors, dialogs or CSP violations. Screenshots go to
// $UI_TEST_OUT (default tests/ui/out). Exit 0 on success, 1 on a failed check; the whole
// run is bounded by a 240 s watchdog.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { start_mock, demo_messages } from './mock-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out_dir = path.resolve(process.env.UI_TEST_OUT || path.join(here, 'out'));
const chromium_path = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(out_dir, { recursive: true });

const watchdog = setTimeout(() => {
  console.error('FAIL: the UI test did not finish within 240 s');
  process.exit(1);
}, 240000);

let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  checks++;
  console.log(`ok ${checks} - ${what}`);
}

// Polls fn until it returns a truthy value (bounded by time), returning that value.
async function until(fn, what, timeout = 8000) {
  const end = Date.now() + timeout;
  let last;
  for (let i = 0; Date.now() < end && i < 10000; i++) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

async function api(base, method, rel, body) {
  const res = await fetch(new URL(rel, base), { method, headers: body !== undefined ? { 'Content-Type': 'application/json' } : {}, body: body !== undefined ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${rel}: ${res.status} ${text}`);
  return text;
}
const send_mail = async (base, req) => JSON.parse(await api(base, 'POST', 'api/v1/send', req)).ID;

// ---- the browser ------------------------------------------------------------------------
const user_dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ui-chromium-'));
const mock = process.env.SLUICE_UI_BASES ? null : await start_mock();
const bases = mock ? [mock.url, `${mock.url}mailbox/team/`] : process.env.SLUICE_UI_BASES.split(',').map((s) => s.trim()).filter(Boolean).map((s) => (s.endsWith('/') ? s : s + '/'));

const context = await chromium.launchPersistentContext(user_dir, {
  executablePath: chromium_path,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// Problems collected from every page; checked at the end.
const problems = [];
let sandbox_blocks = 0;

function watch(page) {
  const reqs = [];
  page.on('request', (r) => reqs.push({ method: r.method(), url: new URL(r.url()), body: r.postData() }));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`unexpected dialog (${d.type()}): ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const text = m.text();
    const at = m.location()?.url || '';
    // The sandbox doing its job: the message's own scripts do not run.
    if (/^Blocked script execution in '.*\/view\/[^/]+\.html\?embed=1' because the document's frame is sandboxed/.test(text)) {
      sandbox_blocks++;
      return;
    }
    // The auth and spam tabs are probed per message; 404 means "no results", by design.
    if (/status of 404/.test(text) && /\/api\/v1\/message\/[^/]+\/(auth|sa-check)$/.test(at)) return;
    problems.push(`console ${m.type()}: ${text} ${at}`);
  });
  return reqs;
}

await context.addInitScript(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
});

// Accessibility: axe-core (evaluated through the DevTools protocol, so the page's CSP does
// not apply to it) on the current view; serious and critical findings fail the test.
const axe_source = fs.readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
async function check_a11y(page, what) {
  await page.evaluate(axe_source);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'], runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  check(found.length === 0, `no serious accessibility findings (axe) in ${what}${found.length ? ':\n  ' + found.join('\n  ') : ''}`);
}

async function csp_violations(page) {
  return page.evaluate(() => window.__csp || []).catch(() => []);
}

const wait_request = (reqs, pred, what) => until(() => reqs.find(pred), what);

// ---- one base -----------------------------------------------------------------------------
async function run_base(base, shots) {
  console.log(`# base ${base}`);
  const bp = new URL(base).pathname;
  await api(base, 'DELETE', 'api/v1/messages');
  for (let i = 1; i <= 52; i++) await send_mail(base, { From: { Email: `filler${i}@load.example`, Name: `Filler ${i}` }, To: [{ Email: 'qa@example.com' }], Subject: `Filler message ${i}`, Text: `Body of filler ${i}.` });
  const ids = {};
  for (const req of demo_messages()) ids[req.Subject] = await send_mail(base, req);
  const invoice = ids['Your invoice #2026-1142'];
  const newsletter = ids['This week: faster mail testing'];
  const evil_subject = Object.keys(ids).find((s) => s.startsWith('<img'));
  if (mock) mock.enable_auth(invoice);
  if (mock) {
    const t0 = Date.now() - 120000;
    mock.set_deliveries(invoice, [
      { Time: new Date(t0).toISOString(), Stage: 'relay', Pipeline: 'capture', Attempt: 1, Status: 'retry', Reply: '451 4.4.1 <b>upstream</b> unavailable', NextAttempt: new Date(t0 + 30000).toISOString(), Details: { host: 'mx.example', error: '<script>alert(1)</script>' } },
      { Time: new Date(t0 + 30000).toISOString(), Stage: 'relay', Pipeline: 'capture', Attempt: 2, Status: 'done', Reply: '250 2.0.0 queued as 7F3A', NextAttempt: null, Details: {} },
    ]);
  }
  const total = 52 + demo_messages().length;

  const page = await context.newPage();
  const reqs = watch(page);
  const inflight = new Set();
  page.on('request', (r) => /api\/v1\/(messages|search)$/.test(new URL(r.url()).pathname) && inflight.add(r));
  page.on('requestfinished', (r) => inflight.delete(r));
  page.on('requestfailed', (r) => inflight.delete(r));
  await page.goto(base);

  // The list.
  await until(async () => (await page.locator('.msg').count()) === 50, 'a first page of 50 rows');
  check(true, 'list shows a page of 50 messages');
  check((await page.locator('.msg .subject').first().textContent()) === 'Reset your password', 'newest message first');
  check(/Page 1 of 2/.test(await page.locator('.pager').first().textContent()), 'pager shows 2 pages');
  await until(async () => (await page.title()).startsWith(`(${total}) `), 'unread count in the title');
  check(true, `title carries the unread count: ${await page.title()}`);
  check((await page.locator('.msg.unread').count()) === 50, 'unread rows are marked');
  check((await page.locator('.msg .subject', { hasText: evil_subject }).count()) === 1, 'hostile subject shown as text');
  check((await page.locator('.msg .from-name', { hasText: '<script>alert(1)</script>' }).count()) === 1, 'hostile sender name shown as text');
  check((await page.locator('.msg-list img, .msg-list script, .msg-list b').count()) === 0, 'no markup from mail in the list');
  check((await page.locator(`.msg[data-id="${invoice}"] .meta svg[aria-label="1 attachment"]`).count()) === 1, 'attachment icon on the invoice');
  check((await page.locator(`.msg[data-id="${invoice}"] .chip`).textContent()) === 'billing', 'tags in the row');
  for (const href of await page.locator('link[href], script[src], .msg-link').evaluateAll((els) => els.map((e) => e.href || e.src))) {
    if (!new URL(href).pathname.startsWith(bp)) throw new Error(`URL outside the base: ${href}`);
  }
  check(true, 'every asset and link resolves under the base');
  const mbs = JSON.parse(await api(base, 'GET', 'api/v1/mailboxes').catch(() => '[]'));
  if (mbs.length > 1) {
    await page.locator('#mailbox-select').waitFor();
    const want = /\/mailbox\/([^/]+)\/$/.exec(bp)?.[1] ?? 'default';
    check((await page.locator('#mailbox-select').inputValue()) === want, `mailbox switcher shows ${want}`);
  }
  await until(async () => (await page.locator('#conn').getAttribute('data-state')) === 'open', 'the WebSocket');

  // Live: a new message appears at the top without reloading the list.
  const list_gets = () => reqs.filter((r) => r.method === 'GET' && /api\/v1\/(messages|search)$/.test(r.url.pathname)).length;
  const gets_before = list_gets();
  const live_id = await send_mail(base, { From: { Email: 'live@push.example', Name: 'Live Sender' }, To: [{ Email: 'qa@example.com' }], Subject: 'Pushed over the WebSocket', Text: 'hello' });
  await until(async () => (await page.locator('.msg').first().getAttribute('data-id')) === live_id, 'the pushed message at the top');
  check(list_gets() === gets_before, 'a `new` event shows the message live, without reloading');
  check((await page.locator('.msg').count()) === 50, 'the page stays at 50 rows');
  await until(async () => (await page.title()).startsWith(`(${total + 1}) `), 'title unread count after new');
  check(true, 'title unread count follows stats');

  // Changes made by another client arrive as `update` and `delete` events.
  const other = await page.locator('.msg').nth(10).getAttribute('data-id'); // a filler
  await api(base, 'PUT', 'api/v1/messages', { IDs: [other], Read: true });
  await until(async () => !(await page.locator(`.msg[data-id="${other}"]`).getAttribute('class')).includes('unread'), 'the row to turn read');
  check(true, 'an `update` event (read elsewhere) un-bolds the row');
  await api(base, 'DELETE', 'api/v1/messages', { IDs: [other] });
  await until(async () => (await page.locator(`.msg[data-id="${other}"]`).count()) === 0, 'the row to go');
  check(true, 'a `delete` event (deleted elsewhere) removes the row');
  await until(async () => (await page.locator('.msg').count()) === 50, 'the page refilled to 50');
  check(true, 'the short page is refilled after a delete');

  if (mock) {
    const mb = /\/mailbox\/([^/]+)\/$/.exec(bp)?.[1] ?? 'default';
    mock.broadcast(mb, 'error', { Level: 'warning', Type: 'smtpd', IP: '127.0.0.1', Message: '<b>550</b> <img src=x onerror=alert(9)> rejected' });
    await until(async () => (await page.locator('.toast', { hasText: '<b>550</b> <img src=x onerror=alert(9)> rejected' }).count()) === 1, 'the error toast');
    check((await page.locator('.toast img, .toast b').count()) === 0, 'an `error` event shows a toast, as text');
    mock.delay_next_list(800);
    mock.drop_sockets();
    await until(async () => (await page.locator('#conn').getAttribute('data-state')) !== 'open', 'the UI noticing the drop');
    await until(async () => (await page.locator('#conn').getAttribute('data-state')) === 'open', 'the reconnect', 10000);
    const again = await send_mail(base, { From: { Email: 'live@push.example' }, Subject: 'After reconnect', Text: 'x' });
    await until(async () => (await page.locator('.msg').first().getAttribute('data-id')) === again, 'a message after reconnecting');
    check(true, 'the WebSocket reconnects and live updates resume');
    // The reconnect reloads the list; an answer older than the event must not undo it.
    await until(() => list_gets() > gets_before && inflight.size === 0, 'the reload after reconnecting');
    check((await page.locator('.msg').first().getAttribute('data-id')) === again, 'the list reload after reconnecting keeps the live message');
  }

  if (shots) {
    await check_a11y(page, 'the list (light)');
    await page.screenshot({ path: path.join(out_dir, 'list-light.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await check_a11y(page, 'the list (dark)');
    await page.screenshot({ path: path.join(out_dir, 'list-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  }

  // Keyboard: j selects the first row, Enter opens it.
  await page.locator('body').click({ position: { x: 5, y: 790 } });
  await page.keyboard.press('j');
  await until(async () => (await page.locator('.msg.active').count()) === 1, 'an active row after j');
  check(true, 'j moves the selection');

  // The message view.
  // A real server with a deferred stage writes the delivery log shortly after the message is
  // stored: give it a moment (bounded) so that the view opened next sees the first entry.
  const deliveries_of = async (id) => JSON.parse(await api(base, 'GET', `api/v1/message/${id}/deliveries`)).Deliveries;
  for (let i = 0; !mock && i < 30 && (await deliveries_of(invoice)).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  const invoice_log = await deliveries_of(invoice);
  await page.locator(`.msg[data-id="${invoice}"] .msg-link`).click();
  await until(() => page.url() === `${base}view/${invoice}`, 'the view URL');
  check(true, 'opening a message goes to <base>view/{ID}');
  await page.locator('#msg-subject').waitFor();
  check((await page.locator('#msg-subject').textContent()) === 'Your invoice #2026-1142', 'subject heading');
  const frame_el = page.locator('iframe.html-frame');
  await frame_el.waitFor();
  const sandbox = await frame_el.getAttribute('sandbox');
  check(sandbox !== null && !/allow-scripts|allow-same-origin/.test(sandbox), `HTML in a sandboxed iframe (sandbox="${sandbox}")`);
  check((await frame_el.evaluate((f) => f.src)) === `${base}view/${invoice}.html?embed=1`, 'iframe loads <base>view/{ID}.html?embed=1');
  const frame = page.frameLocator('iframe.html-frame');
  check((await frame.locator('h1').textContent()) === 'Invoice #2026-1142', 'the HTML body renders in the iframe');
  check((await until(() => frame.locator('img').evaluate((i) => i.complete && i.naturalWidth))) > 0, 'the inline cid: image loads');
  check((await page.locator('a', { hasText: 'Download .eml' }).evaluate((a) => a.href)) === `${base}api/v1/message/${invoice}/raw?dl=1`, 'download .eml link');

  await page.getByRole('tab', { name: 'Text' }).click();
  check(/Amount due: EUR 42\.00/.test(await page.locator('#panel-text').textContent()), 'Text tab');
  await page.getByRole('tab', { name: 'HTML source' }).click();
  check(/<h1>Invoice #2026-1142<\/h1>/.test(await page.locator('#panel-source pre').textContent()), 'HTML source tab shows the markup as text');
  await page.getByRole('tab', { name: 'Headers' }).click();
  await wait_request(reqs, (r) => r.url.pathname === `${bp}api/v1/message/${invoice}/headers`, 'GET headers');
  await until(async () => (await page.locator('#panel-headers tr').count()) > 3, 'header rows');
  check((await page.locator('#panel-headers tr', { hasText: 'Subject' }).locator('td').first().textContent()) === 'Your invoice #2026-1142', 'Headers tab from /headers');
  await page.getByRole('tab', { name: 'Raw' }).click();
  await until(async () => /MIME-Version: 1\.0/i.test(await page.locator('#panel-raw').textContent()), 'raw text');
  check(true, 'Raw tab from /raw');
  await page.getByRole('tab', { name: /Attachments \(2\)/ }).click();
  const pdf = page.locator('#panel-parts a.part-name', { hasText: 'invoice-2026-1142.pdf' });
  check(/\/api\/v1\/message\/[^/]+\/part\/[^/]+$/.test(await pdf.evaluate((a) => a.href)) && (await pdf.evaluate((a) => a.href)).startsWith(base), 'attachment download link under the base');
  check((await until(() => page.locator('#panel-parts img.thumb').first().evaluate((i) => i.complete && i.naturalWidth))) > 0, 'image thumbnail from /thumb');
  const auth_status = (await fetch(new URL(`api/v1/message/${invoice}/auth`, base))).status;
  if (auth_status === 200) {
    await page.getByRole('tab', { name: 'Authentication' }).waitFor();
    await page.getByRole('tab', { name: 'Authentication' }).click();
    check(/pass/.test(await page.locator('#panel-auth').textContent()), 'Authentication tab when /auth answers 200');
  } else {
    check((await page.getByRole('tab', { name: 'Authentication' }).count()) === 0, 'no Authentication tab when /auth is not 200');
  }
  // The link check (mock only: against the real server it would request the message's links).
  if (mock) {
    await page.getByRole('tab', { name: 'Link check' }).click();
    await page.getByRole('button', { name: 'Check links' }).click();
    await until(async () => (await page.locator('#panel-links tbody tr').count()) === 4, 'link check rows');
    check(/4 links checked: 2 errors/.test(await page.locator('#panel-links .link-check-status').textContent()), 'link check summary');
    check((await page.locator('#panel-links tbody tr[data-bad="1"]').count()) === 2, 'link check marks status 0 and >= 400 as errors');
    check((await page.locator('#panel-links tbody tr').nth(1).locator('td').first().textContent()) === '301', 'without follow the redirect status is shown');
    check((await page.locator('#panel-links b').count()) === 0, 'link check URLs are shown as text');
    await page.locator('#link-check-follow').check();
    await page.getByRole('button', { name: 'Check links' }).click();
    await until(async () => (await page.locator('#panel-links tbody tr').nth(1).locator('td').first().textContent()) === '200', 'follow=true result');
    if (shots) await check_a11y(page, 'the Link check tab');
  }
  // The HTML check, against the mock and the real server (its caniemail data): one row per
  // feature the server found, its texts rebuilt from the markup subset only.
  {
    const expected = await (await fetch(new URL(`api/v1/message/${invoice}/html-check`, base))).json();
    await page.getByRole('tab', { name: 'HTML check' }).click();
    await until(async () => (await page.locator('#panel-htmlcheck tbody tr').count()) === expected.Warnings.length, 'HTML check rows');
    check(expected.Warnings.length > 0, 'the HTML check finds features of the invoice');
    check(/elements?, \d+ tests?: supported \d+%/.test(await page.locator('#panel-htmlcheck .html-check-status').textContent()), 'HTML check summary');
    const first = expected.Warnings[0];
    check((await page.locator(`#panel-htmlcheck tbody tr[data-slug="${first.Slug}"] td`).nth(2).textContent()) === String(first.Score.Found), 'HTML check row shows the Found count');
    check((await page.locator('#panel-htmlcheck img, #panel-htmlcheck script, #panel-htmlcheck b').count()) === 0, 'HTML check texts make no elements outside code/strong/em/a');
    if (mock) check((await page.locator('#panel-htmlcheck code', { hasText: '<style>' }).count()) === 1, 'HTML check renders <code> from the description');
    if (mock) {
      const row = page.locator('#panel-htmlcheck tr[data-slug="css-display-flex"]');
      check((await row.locator('a[href^="javascript"]').count()) === 0 && (await row.locator('a[href="https://www.caniemail.com/"]').count()) === 1, 'HTML check links only http(s) URLs');
      check((await row.locator('span span code, span > span > code').count()) === 0 && (await row.locator('code', { hasText: 'tail' }).count()) === 1, 'a refused link is closed: the text after it is not inside it');
    }
    if (shots) {
      await check_a11y(page, 'the HTML check tab');
      await page.locator('#panel-htmlcheck details').first().evaluate((d) => { d.open = true; });
      await page.screenshot({ path: path.join(out_dir, 'message-htmlcheck.png'), fullPage: true });
    }
  }
  // Deliveries: a tab iff the delivery log has entries, one row per attempt, as text.
  if (invoice_log.length) {
    const dtab = page.getByRole('tab', { name: `Deliveries (${invoice_log.length})` });
    await dtab.waitFor();
    await dtab.click();
    await until(async () => (await page.locator('#panel-deliveries tbody tr').count()) === invoice_log.length, 'delivery log rows');
    const first_row = page.locator('#panel-deliveries tbody tr').first();
    check((await first_row.locator('td').nth(1).textContent()) === invoice_log[0].Stage && (await first_row.locator('td').nth(3).textContent()) === String(invoice_log[0].Attempt) && (await first_row.locator('td').nth(4).textContent()) === invoice_log[0].Status && (await first_row.locator('td').nth(5).textContent()) === (invoice_log[0].Reply || ''), 'Deliveries tab rows from /deliveries (stage, attempt, status, reply)');
    check((await page.locator('#panel-deliveries b, #panel-deliveries script').count()) === 0, 'delivery replies and details are shown as text');
    if (mock) {
      check(/Delivered/.test(await page.locator('#panel-deliveries .delivery-summary').textContent()), 'Deliveries summary names the last status');
      await page.locator('#panel-deliveries details summary').first().click();
      check(/mx\.example/.test(await page.locator('#panel-deliveries pre.delivery-details').first().textContent()), 'delivery details open as JSON text');
    }
    if (shots) {
      await check_a11y(page, 'the Deliveries tab');
      await page.screenshot({ path: path.join(out_dir, 'message-deliveries.png') });
    }
  } else {
    await page.waitForTimeout(300);
    check((await page.getByRole('tab', { name: /^Deliveries/ }).count()) === 0, 'no Deliveries tab for an empty delivery log');
  }
  await page.getByRole('tab', { name: 'HTML', exact: true }).click();
  if (shots) {
    await check_a11y(page, 'the message view');
    await page.screenshot({ path: path.join(out_dir, 'message-light.png') });
  }

  // Tags.
  await page.getByLabel('Add a tag').fill('urgent');
  await page.getByLabel('Add a tag').press('Enter');
  const put = await wait_request(reqs, (r) => r.method === 'PUT' && r.url.pathname === `${bp}api/v1/tags`, 'PUT api/v1/tags');
  const put_body = JSON.parse(put.body);
  check(JSON.stringify(put_body.IDs) === JSON.stringify([invoice]) && put_body.Tags.includes('urgent') && put_body.Tags.includes('billing'), 'tag editing sends PUT api/v1/tags {IDs, Tags}');
  await page.locator('.tag-chips li', { hasText: 'urgent' }).waitFor();
  await until(async () => (await page.locator('#tag-list', { hasText: 'urgent' }).count()) === 1, 'the tag in the sidebar');
  check(true, 'new tag shown on the message and in the sidebar');

  // Mark unread, then delete.
  await page.getByRole('button', { name: 'Mark unread' }).click();
  const unread_req = await wait_request(reqs, (r) => r.method === 'PUT' && r.url.pathname === `${bp}api/v1/messages`, 'PUT api/v1/messages');
  check(JSON.stringify(JSON.parse(unread_req.body)) === JSON.stringify({ IDs: [invoice], Read: false }), 'mark unread sends {IDs, Read:false}');
  await page.getByRole('button', { name: 'Mark read' }).waitFor();
  await page.locator('.view-toolbar').getByRole('button', { name: 'Delete' }).click();
  const del = await wait_request(reqs, (r) => r.method === 'DELETE' && r.url.pathname === `${bp}api/v1/messages`, 'DELETE api/v1/messages');
  check(JSON.stringify(JSON.parse(del.body)) === JSON.stringify({ IDs: [invoice] }), 'delete sends DELETE api/v1/messages {IDs}');
  await until(() => page.url() !== `${base}view/${invoice}`, 'leaving the deleted message');
  check(JSON.parse(await api(base, 'GET', 'api/v1/search?query=' + encodeURIComponent('subject:invoice'))).messages_count === 0, 'the server no longer has it');
  await page.locator('#nav-inbox').click();
  await until(async () => (await page.locator('.msg').count()) === 50, 'the list again');
  check((await page.locator(`.msg[data-id="${invoice}"]`).count()) === 0, 'deleted message gone from the list');

  // Search.
  await page.locator('#search-help-btn').click();
  check(await page.locator('#search-help').isVisible(), 'search syntax help opens');
  await page.keyboard.press('Escape');
  await page.locator('#search-input').fill('from:weekly');
  await page.locator('#search-input').press('Enter');
  const sreq = await wait_request(reqs, (r) => r.method === 'GET' && r.url.pathname === `${bp}api/v1/search`, 'GET api/v1/search');
  check(sreq.url.searchParams.get('query') === 'from:weekly' && sreq.url.searchParams.get('limit') === '50', 'search sends query=from:weekly');
  await until(async () => (await page.locator('.msg').count()) === 1, 'one search result');
  check(page.url() === `${base}search?q=from%3Aweekly`, 'search URL is <base>search?q=');
  await page.reload();
  await until(async () => (await page.locator('.msg').count()) === 1 && (await page.locator('#search-input').inputValue()) === 'from:weekly', 'search results after reload');
  check(true, 'a search deep link works after reload');

  // Deep link to a message; List-Unsubscribe.
  await page.goto(`${base}view/${newsletter}`);
  await page.locator('#msg-subject').waitFor();
  check((await page.locator('#msg-subject').textContent()) === 'This week: faster mail testing', 'deep link to a message');
  await page.locator('.unsub summary').click();
  check((await page.locator('.unsub a', { hasText: 'https://weekly.example/unsub?u=abc' }).count()) === 1 && /one-click/.test(await page.locator('.unsub summary').textContent()), 'List-Unsubscribe links and one-click');
  await page.waitForTimeout(300); // give the auth probe time to (not) add a tab
  if ((await deliveries_of(newsletter)).length === 0) {
    check((await page.getByRole('tab', { name: /^Deliveries/ }).count()) === 0, 'no Deliveries tab for an empty delivery log');
  }
  if ((await fetch(new URL(`api/v1/message/${newsletter}/auth`, base))).status !== 200) {
    check((await page.getByRole('tab', { name: 'Authentication' }).count()) === 0, 'no Authentication tab for a 404 /auth');
  }

  await until(async () => (await page.locator('.view-nav a[aria-label^="Older"]').count()) === 1, 'the older-message arrow on a deep link');
  const older_href = await page.locator('.view-nav a[aria-label^="Older"]').evaluate((a) => a.href);
  await page.keyboard.press('j');
  await until(() => page.url() === older_href, 'j to open the older message');
  check(true, 'on a deep link the list loads behind the message; j opens the older one');

  // The hostile message: escaped headers, no script runs in the sandbox (dialogs fail).
  const evil = ids[evil_subject];
  await page.goto(`${base}view/${evil}`);
  await page.locator('#msg-subject').waitFor();
  check((await page.locator('#msg-subject').textContent()) === evil_subject, 'hostile subject heading shown as text');
  await frame_el.waitFor();
  await page.frameLocator('iframe.html-frame').locator('p').waitFor();
  if (shots) {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base);
    await until(async () => (await page.locator('.msg').count()) === 50, 'list on a narrow screen');
    await page.screenshot({ path: path.join(out_dir, 'list-narrow.png') });
    await page.locator('#nav-toggle').click();
    await page.waitForTimeout(250);
    await page.screenshot({ path: path.join(out_dir, 'nav-narrow.png') });
    await page.setViewportSize({ width: 1280, height: 800 });
  } else {
    await page.goto(base);
    await until(async () => (await page.locator('.msg').count()) === 50, 'list');
    await page.screenshot({ path: path.join(out_dir, `list-${bp.replace(/\W+/g, '_')}.png`) });
  }

  // Bulk: select two rows, delete them; then mark all read.
  await page.goto(base);
  await until(async () => (await page.locator('.msg').count()) === 50, 'list before the bulk actions');
  const two = await page.locator('.msg').evaluateAll((els) => els.slice(1, 3).map((e) => e.dataset.id));
  for (const id of two) await page.locator(`.msg[data-id="${id}"] .sel`).check();
  check(/2 selected/.test(await page.locator('.bulk').textContent()), 'selecting rows shows the bulk actions');
  await page.locator('.bulk').getByRole('button', { name: 'Delete' }).click();
  const bulk = await wait_request(reqs, (r) => r.method === 'DELETE' && r.url.pathname === `${bp}api/v1/messages` && r.body && JSON.parse(r.body).IDs?.length === 2, 'bulk DELETE');
  check(JSON.stringify(JSON.parse(bulk.body).IDs.sort()) === JSON.stringify([...two].sort()), 'bulk delete sends both IDs');
  await until(async () => (await page.locator(two.map((id) => `.msg[data-id="${id}"]`).join(', ')).count()) === 0, 'the rows to go');
  check(true, 'bulk-deleted rows leave the list');
  await page.locator('#mark-all-read').click();
  const all_read = await wait_request(reqs, (r) => r.method === 'PUT' && r.url.pathname === `${bp}api/v1/messages` && JSON.parse(r.body || '{}').IDs === undefined, 'PUT api/v1/messages {Read:true}');
  check(JSON.stringify(JSON.parse(all_read.body)) === JSON.stringify({ Read: true }), 'mark all read sends {Read:true}');
  await until(async () => (await page.locator('.msg.unread').count()) === 0 && !/^\(/.test(await page.title()), 'no unread rows and no count in the title');
  check(true, 'mark all read clears the unread rows and the title count');

  // Delete all (with confirmation).
  await until(async () => (await page.locator('.msg').count()) === 50, 'list before delete all');
  await page.locator('#delete-all').click();
  await page.locator('#confirm').waitFor();
  check(/Delete all \d+ messages/.test(await page.locator('#confirm-text').textContent()), 'delete all asks for confirmation');
  await page.locator('#confirm-ok').click();
  const dall = await wait_request(reqs, (r) => r.method === 'DELETE' && r.url.pathname === `${bp}api/v1/messages` && !r.body, 'DELETE api/v1/messages without a body');
  check(!!dall, 'delete all sends DELETE api/v1/messages without a body');
  await until(async () => (await page.locator('.msg').count()) === 0 && (await page.locator('.empty').isVisible()), 'an empty list');
  check(JSON.parse(await api(base, 'GET', 'api/v1/messages')).total === 0, 'the server is empty');

  const v = await csp_violations(page);
  check(v.length === 0, `no CSP violations on the page (${v.join('; ')})`);
  await page.close();
}

let failed = false;
try {
  let first = true;
  for (const b of bases) {
    await run_base(b, first);
    first = false;
  }
  // The API reference at <base>api/v1/ (the real server only: the mock has no swagger.json).
  if (!mock) {
    const page = await context.newPage();
    watch(page);
    await page.goto(`${bases[0]}api/v1/`);
    await page.waitForSelector('#docs:not([aria-busy])');
    check((await page.locator('.docs-op').count()) > 25, 'API reference lists the operations of swagger.json');
    check((await page.locator('#schema-LinkCheckResponse').count()) === 1, 'API reference lists the schemas');
    await page.locator('#op-getMessages details summary').click();
    await page.locator('#op-getMessages input[name=limit]').fill('2');
    const sent = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith('/api/v1/messages') && new URL(r.url()).searchParams.get('limit') === '2', { timeout: 8000 });
    await page.locator('#op-getMessages button').click();
    check(!!(await sent), 'API reference: Try it sends the query parameters');
    await until(async () => /^200 /.test(await page.locator('#op-getMessages .docs-status').textContent()), 'API reference: Try it answers');
    check(typeof JSON.parse(await page.locator('#op-getMessages .docs-answer').textContent()).total === 'number', 'API reference: the answer is shown as JSON text');
    await check_a11y(page, 'the API reference');
    await page.close();
  }
  check(sandbox_blocks > 0, `the sandbox blocked the hostile message's scripts (${sandbox_blocks} reports)`);
  if (mock) check(mock.csp_reports.length === 0, `no CSP reports at the server (${mock.csp_reports.join('; ')})`);
  check(problems.length === 0, `no console errors, page errors or dialogs${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);
  console.log(`PASS: ${checks} checks; screenshots in ${out_dir}`);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.message}`);
  if (problems.length) console.error('also seen:\n  ' + problems.join('\n  '));
  try {
    const pages = context.pages();
    if (pages.length) await pages[pages.length - 1].screenshot({ path: path.join(out_dir, 'failure.png') });
  } catch {
    /* best effort */
  }
} finally {
  await context.close().catch(() => {});
  if (mock) await mock.close();
  fs.rmSync(user_dir, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
