// mime_integration_test.cpp — the real sluice binary with the pipeline smtp → mime → store:
// messages sent with Python's smtplib are read back through the store's mailbox service
// (store_reader), and the parsed view is checked field by field, parts served by the store
// from the recorded offsets included. A 20 MB message with attachments, spilled to the
// spool, is parsed from its file: the process's peak RSS with the mime stage stays within
// a few MB of the same pipeline without it.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

namespace {

std::string config(bool with_mime) {
  std::string c = R"(log: {format: text, level: info}
spool: {path: ./spool, spill_threshold: 256KB}
services:
  - name: default
    plugin: store
    path: ./mail.db
listeners:
  - name: smtp
    plugin: smtp
    pipeline: capture
    listen: ["127.0.0.1:0"]
    max_message_size: 64MB
pipelines:
  - name: capture
    stages:
)";
  if (with_mime) c += "      - plugin: mime\n        timeout: 60s\n";
  c += "      - plugin: store\n        timeout: 60s\n";
  return c;
}

bool plugins_built() {
  const fs::path dir = fs::path(test::build_dir()) / "lib/sluice/plugins";
  return fs::exists(dir / "smtp.so") && fs::exists(dir / "store.so") && fs::exists(dir / "mime.so");
}

std::string sha256(std::string_view d) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(d.data(), d.size(), out, &n, EVP_sha256(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", out[i]);
    hex += b;
  }
  return hex;
}

std::string decode_base64(std::string_view in) {
  std::string out(in.size(), '\0');
  EVP_ENCODE_CTX* ctx = EVP_ENCODE_CTX_new();
  EVP_DecodeInit(ctx);
  int n = 0, m = 0;
  EVP_DecodeUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n,
                   reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  EVP_DecodeFinal(ctx, reinterpret_cast<unsigned char*>(out.data()) + n, &m);
  EVP_ENCODE_CTX_free(ctx);
  out.resize(static_cast<std::size_t>(n + m));
  return out;
}

// Writes and runs a Python script; returns its standard output (the test fails on error).
std::string python(const fs::path& dir, const std::string& script) {
  const fs::path file = dir / "send.py";
  std::ofstream(file) << script;
  std::string out;
  const int rc = test::run_command(
      "cd " + dir.string() + " && python3 " + file.string() + " 2>" + (dir / "py.err").string(),
      &out, false);
  EXPECT_EQ(rc, 0) << out << test::read_file(dir / "py.err");
  return out;
}

constexpr const char* kSendScript = R"PY(
import json, smtplib, sys, hashlib
from email.message import EmailMessage
from email.headerregistry import Address
port = int(open("port").read())
m = EmailMessage()
m["From"] = Address("Jürgen Müller", addr_spec="juergen@example.org")
m["To"] = [Address("Bob", addr_spec="bob@example.com"), Address(addr_spec="carol@example.com")]
m["Cc"] = "Dave <dave@example.net>"
m["Subject"] = "Grüße aus Köln — ein Test mit Umlauten und einer langen Betreffzeile über achtzig Zeichen"
m["Date"] = "Tue, 01 Dec 2026 10:20:30 +0000"
m["List-Unsubscribe"] = "<https://example.org/u/1>, <mailto:u@example.org>"
m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
m.set_content("Hallo Bob,\nschöne Grüße.\n")
m.add_alternative('<p>Hallo <b>Bob</b>, <img src="cid:logo@example.org"> schöne Grüße.</p>', subtype="html")
html = m.get_payload()[1]
logo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
html.add_related(logo, maintype="image", subtype="png", cid="<logo@example.org>")
pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
m.add_attachment(pdf, maintype="application", subtype="pdf", filename="Bericht über 2026.pdf")
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.send_message(m, to_addrs=["bob@example.com", "carol@example.com", "dave@example.net", "hidden@example.com"])
print(json.dumps({"logo": hashlib.sha256(logo).hexdigest(), "pdf": hashlib.sha256(pdf).hexdigest(),
                  "pdf_size": len(pdf), "logo_size": len(logo)}))
)PY";

}  // namespace

TEST(mime_integration, smtplib_message_through_smtp_mime_store) {
  if (!plugins_built()) GTEST_SKIP() << "smtp.so, store.so or mime.so is not built";
  temp_dir dir;
  boost::json::object sent;
  {
    sluice_process p(dir.path(), config(true));
    ASSERT_TRUE(p.running()) << p.log();
    std::ofstream(dir.path() / "port") << p.port("smtp");
    const std::string out = python(dir.path(), kSendScript);
    sent = boost::json::parse(out).as_object();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  test::store_reader reader(dir.path(), "mail.db");
  auto all = reader.all();
  ASSERT_EQ(all.size(), 1u);
  auto got = reader.run(reader.service().get("default", all[0].id));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->view) << "the store kept no parsed view";
  const parsed_message& v = *got->view;
  ASSERT_TRUE(v.from);
  EXPECT_EQ(v.from->name, "Jürgen Müller");
  EXPECT_EQ(v.from->address, "juergen@example.org");
  ASSERT_EQ(v.to.size(), 2u);
  EXPECT_EQ(v.to[0], (mail_address{"Bob", "bob@example.com"}));
  ASSERT_EQ(v.cc.size(), 1u);
  EXPECT_EQ(v.cc[0].address, "dave@example.net");
  // The listener records the envelope-only recipient as a Bcc edit; the view has it.
  ASSERT_EQ(v.bcc.size(), 1u);
  EXPECT_EQ(v.bcc[0].address, "hidden@example.com");
  EXPECT_EQ(v.subject,
            "Grüße aus Köln — ein Test mit Umlauten und einer langen Betreffzeile über achtzig "
            "Zeichen");
  EXPECT_FALSE(v.message_id.empty());  // added by the listener as an edit
  // The listener prepends Return-Path from MAIL FROM (smtplib uses the From address).
  EXPECT_EQ(v.return_path, "juergen@example.org");
  EXPECT_EQ(v.date_ms, std::optional<std::int64_t>(1796120430000));
  EXPECT_EQ(v.text, "Hallo Bob,\r\nschöne Grüße.\r\n");  // CRLF on the wire
  EXPECT_NE(v.html.find("<b>Bob</b>"), std::string::npos);
  // search_text goes to the store's index and is not kept with the view (the unit tests
  // check it).
  EXPECT_EQ(v.snippet, "Hallo Bob, schöne Grüße.");
  EXPECT_EQ(v.list_unsubscribe.links,
            (std::vector<std::string>{"https://example.org/u/1", "mailto:u@example.org"}));
  EXPECT_EQ(v.list_unsubscribe.errors, "");
  EXPECT_EQ(v.list_unsubscribe.header_post, "List-Unsubscribe=One-Click");
  ASSERT_EQ(v.inline_parts.size(), 1u);
  EXPECT_EQ(v.inline_parts[0].content_id, "logo@example.org");
  EXPECT_EQ(v.inline_parts[0].sha256, sent["logo"].as_string());
  ASSERT_EQ(v.attachments.size(), 1u);
  const mime_part& pdf = v.attachments[0];
  EXPECT_EQ(pdf.file_name, "Bericht über 2026.pdf");
  EXPECT_EQ(pdf.content_type, "application/pdf");
  EXPECT_EQ(pdf.sha256, sent["pdf"].as_string());
  EXPECT_EQ(pdf.size, static_cast<std::uint64_t>(sent["pdf_size"].as_int64()));
  EXPECT_TRUE(v.problems.empty()) << boost::json::serialize(to_json(v));
  // The recorded offsets are offsets in the raw message the store kept: slicing and
  // decoding gives the bytes that were sent.
  const auto raw = reader.raw(all[0].id, false);
  ASSERT_TRUE(raw);
  ASSERT_LE(pdf.offset + pdf.length, raw->size());
  ASSERT_EQ(pdf.transfer_encoding, "base64");
  EXPECT_EQ(sha256(decode_base64(raw->substr(pdf.offset, pdf.length))), sent["pdf"].as_string());
  // Once the store serves parts (mailbox_service::part), it must agree.
  if (auto part = reader.run(reader.service().part("default", all[0].id, pdf.part_id))) {
    EXPECT_EQ(sha256(part->data), sent["pdf"].as_string());
  }
  EXPECT_EQ(all[0].attachments, 1u);
  EXPECT_EQ(all[0].snippet, "Hallo Bob, schöne Grüße.");
}

namespace {

constexpr const char* kBigScript = R"PY(
import json, random, smtplib, sys, hashlib
from email.message import EmailMessage
port = int(open("port").read())
r = random.Random(7)
a = r.randbytes(8 * 1024 * 1024)
b = r.randbytes(7 * 1024 * 1024)
m = EmailMessage()
m["From"] = "big@example.org"
m["To"] = "bob@example.com"
m["Subject"] = "twenty megabytes"
m.set_content("see the attachments\n")
m.add_attachment(a, maintype="application", subtype="octet-stream", filename="a.bin")
m.add_attachment(b, maintype="application", subtype="octet-stream", filename="b.bin")
data = m.as_bytes()
with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
    s.sendmail("big@example.org", ["bob@example.com"], data)
print(json.dumps({"a": hashlib.sha256(a).hexdigest(), "b": hashlib.sha256(b).hexdigest(), "size": len(data)}))
)PY";

std::int64_t peak_rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.starts_with("VmHWM:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// Sends the big message through a pipeline with or without the mime stage; returns the
// peak RSS of sluice (kB) and what was sent.
std::int64_t run_big(const fs::path& dir, bool with_mime, boost::json::object& sent) {
  sluice_process p(dir, config(with_mime));
  EXPECT_TRUE(p.running()) << p.log();
  if (!p.running()) return -1;
  std::ofstream(dir / "port") << p.port("smtp");
  sent = boost::json::parse(python(dir, kBigScript)).as_object();
  const std::int64_t peak = peak_rss_kb(p.pid());
  EXPECT_EQ(p.stop(std::chrono::seconds(60)), 0) << p.log();
  return peak;
}

}  // namespace

TEST(mime_integration, spilled_twenty_megabyte_message_is_parsed_from_the_spool_file) {
  if (!plugins_built()) GTEST_SKIP() << "smtp.so, store.so or mime.so is not built";
  temp_dir without_dir, with_dir;
  boost::json::object sent;
  const std::int64_t base = run_big(without_dir.path(), false, sent);
  const std::int64_t peak = run_big(with_dir.path(), true, sent);
  ASSERT_GT(base, 0);
  ASSERT_GT(sent["size"].as_int64(), 20 * 1000 * 1000);
  // A copy of the message would add 20 MB; the parse itself needs its 64 KB buffers, GMime
  // objects and the view.
  EXPECT_LT(peak - base, 12 * 1024)
      << "peak RSS " << peak << " kB with the mime stage, " << base << " kB without";
  std::cout << "peak RSS: " << base << " kB without mime, " << peak << " kB with\n";

  test::store_reader reader(with_dir.path(), "mail.db");
  auto all = reader.all();
  ASSERT_EQ(all.size(), 1u);
  auto got = reader.run(reader.service().get("default", all[0].id));
  ASSERT_TRUE(got && got->view);
  const parsed_message& v = *got->view;
  EXPECT_EQ(v.subject, "twenty megabytes");
  EXPECT_EQ(v.text, "see the attachments\n");
  ASSERT_EQ(v.attachments.size(), 2u);
  EXPECT_EQ(v.attachments[0].file_name, "a.bin");
  EXPECT_EQ(v.attachments[0].size, 8u * 1024 * 1024);
  EXPECT_EQ(v.attachments[0].sha256, sent["a"].as_string());
  EXPECT_EQ(v.attachments[1].sha256, sent["b"].as_string());
  EXPECT_TRUE(v.problems.empty());
}
