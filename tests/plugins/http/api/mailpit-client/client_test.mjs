// client_test.mjs — Mailpit's own npm client (mailpit-api) against a running sluice.
// Usage: node client_test.mjs http://host:port
// Every call goes through the client's fetch wrapper, which rejects anything but HTTP 200
// and parses the JSON: the shapes must be Mailpit's for these calls to succeed.
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mp = new MailpitClient(process.argv[2]);
// A 240×60 PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAPAAAAA8CAIAAADXHaAKAAAAiElEQVR42u3SAQkAAAzDsEm/88/HCERBaXIPOyTA0GBoMDQYGkODocHQYGgwNIYGQ4OhwdBgaAwNhgZDg6HB0BgaDA2GBkODoTE0GBoMDYYGQ2NoMDQYGgwNhsbQYGgwNBgaQ4OhwdBgaDA0hgZDg6HB0GBoDA2GBkODocHQGBoMDYYGQ4Oh2VfnzSytXVyaLAAAAABJRU5ErkJggg==";

await mp.deleteMessages();
assert.equal((await mp.listMessages()).total, 0);

const sent = await mp.sendMessage({
  From: { Email: "npm@example.org", Name: "npm client" },
  To: [{ Email: "to@example.org", Name: "To" }],
  Cc: [{ Email: "cc@example.org" }],
  Subject: "from mailpit-api",
  Text: "hello from npm",
  HTML: '<p>hello <img src="cid:px"> <a href="https://example.org">x</a></p>',
  Tags: ["npm"],
  Attachments: [
    { Content: PNG, Filename: "px.png", ContentID: "px" },
    { Content: Buffer.from("attached text").toString("base64"), Filename: "note.txt" },
  ],
});
assert.deepEqual(Object.keys(sent), ["ID"]);

const list = await mp.listMessages(0, 10);
assert.equal(list.total, 1);
assert.equal(list.messages_count, 1);
assert.equal(list.messages[0].ID, sent.ID);
assert.equal(list.messages[0].Subject, "from mailpit-api");
assert.deepEqual(list.messages[0].Tags, ["npm"]);

const msg = await mp.getMessageSummary(sent.ID);
assert.equal(msg.From.Address, "npm@example.org");
assert.equal(msg.Cc[0].Address, "cc@example.org");
assert.equal(msg.Text.trim(), "hello from npm");
assert.equal(msg.Inline.length, 1);
assert.equal(msg.Inline[0].ContentID, "px");
assert.equal(msg.Attachments.length, 1);
assert.equal(msg.Attachments[0].FileName, "note.txt");
assert.equal((await mp.getMessageSummary()).ID, sent.ID); // latest

const headers = await mp.getMessageHeaders(sent.ID);
assert.ok(headers["Message-Id"] && headers["Mime-Version"] && headers["X-Tags"], Object.keys(headers).join());
assert.match(await mp.getMessageSource(sent.ID), /Subject: from mailpit-api/);

const note = await mp.getMessageAttachment(sent.ID, msg.Attachments[0].PartID);
assert.equal(await note.text(), "attached text");
const image = await mp.getMessageAttachment(sent.ID, msg.Inline[0].PartID);
assert.equal(Buffer.from(await image.arrayBuffer()).toString("base64"), PNG);
const thumb = await mp.getAttachmentThumbnail(sent.ID, msg.Inline[0].PartID);
assert.equal(thumb.type, "image/jpeg");
const jpeg = Buffer.from(await thumb.arrayBuffer());
assert.equal(jpeg[0], 0xff);
assert.equal(jpeg[1], 0xd8);

assert.equal((await mp.searchMessages({ query: "tag:npm" })).messages_count, 1);
assert.equal((await mp.searchMessages({ query: "nothing-like-this" })).messages_count, 0);
assert.equal((await mp.waitForMessage({ query: 'subject:"from mailpit-api"' })).ID, sent.ID);

await mp.setReadStatus({ IDs: [sent.ID], Read: false });
assert.equal((await mp.listMessages()).unread, 1);
await mp.setReadStatus({ Read: true });
assert.equal((await mp.listMessages()).unread, 0);

await mp.setTags({ IDs: [sent.ID], Tags: ["alpha", "beta"] });
assert.deepEqual(await mp.getTags(), ["alpha", "beta"]);
await mp.renameTag("alpha", "gamma");
await mp.deleteTag("beta");
assert.deepEqual(await mp.getTags(), ["gamma"]);

const html = await mp.renderMessageHTML(sent.ID);
assert.match(html, new RegExp("api/v1/message/" + sent.ID + "/part/" + msg.Inline[0].PartID));
const embedded = await mp.renderMessageHTML(sent.ID, 1);
assert.match(embedded, /target="_blank" rel="noreferrer noopener"/);
assert.equal((await mp.renderMessageText(sent.ID)).trim(), "hello from npm");

const info = await mp.getInfo();
assert.equal(info.Messages, 1);
assert.ok(info.RuntimeStats && typeof info.RuntimeStats.Uptime === "number");
const conf = await mp.getConfiguration();
assert.equal(conf.ChaosEnabled, false);
assert.equal(conf.MessageRelay.Enabled, false);
await assert.rejects(mp.getChaosTriggers()); // 400 "Chaos is not enabled"
await assert.rejects(mp.releaseMessage(sent.ID, { To: ["x@example.org"] })); // no relay

await mp.deleteMessagesBySearch({ query: "tag:gamma" });
assert.equal((await mp.listMessages()).total, 0);

// The link check: a loopback link is refused by the SSRF guard (no request is made), so
// the test needs no network; the client sends follow=false.
const linked = await mp.sendMessage({
  From: { Email: "npm@example.org" },
  To: [{ Email: "to@example.org" }],
  Subject: "links",
  HTML: '<p><a href="http://127.0.0.1:9/page">a loopback link</a></p>',
});
const lc = await mp.linkCheck(linked.ID);
assert.equal(lc.Errors, 1);
assert.equal(lc.Links.length, 1);
assert.equal(lc.Links[0].URL, "http://127.0.0.1:9/page");
assert.equal(lc.Links[0].StatusCode, 451);
assert.match(lc.Links[0].Status, /^Blocked private\/reserved address/);
assert.deepEqual(await mp.linkCheck(linked.ID, true), lc);
// The HTML check (caniemail data from scripts/install-deps.sh): features found, scored.
const styled = await mp.sendMessage({
  From: { Email: "npm@example.org" },
  To: [{ Email: "to@example.org" }],
  Subject: "html check",
  HTML: '<div style="display: flex; width: 2rem"><svg></svg></div>',
});
const hc = await mp.htmlCheck(styled.ID);
const bySlug = Object.fromEntries(hc.Warnings.map((w) => [w.Slug, w]));
assert.equal(bySlug["css-display-flex"].Score.Found, 1);
assert.equal(bySlug["html-svg"].Score.Found, 1);
assert.equal(bySlug["css-unit-rem"].Score.Found, 1);
assert.ok(bySlug["html-svg"].Results.length > 10);
assert.ok(["yes", "no", "partial"].includes(bySlug["html-svg"].Results[0].Support));
assert.ok(hc.Total.Tests > 100 && hc.Total.Nodes >= 2);
assert.ok(Math.abs(hc.Total.Supported + hc.Total.Partial + hc.Total.Unsupported - 100) < 1e-6);
assert.ok(Array.isArray(hc.Platforms.ios));
const plain = await mp.sendMessage({
  From: { Email: "npm@example.org" },
  To: [{ Email: "to@example.org" }],
  Subject: "text only",
  Text: "no html here",
});
await assert.rejects(mp.htmlCheck(plain.ID)); // 400 "message does not contain HTML"
await mp.deleteMessages({ IDs: [linked.ID, styled.ID, plain.ID] });
assert.equal((await mp.listMessages()).total, 0);
console.log("mailpit-api: all checks passed");
