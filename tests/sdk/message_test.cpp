// message_test.cpp — bodies (memory and spilled), header edits on output, message ids.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>
#include <vector>

#include "sluice/message.hpp"
#include "sluice/message_json.hpp"
#include "sluice_test.hpp"

namespace {

using namespace sluice;

TEST(message_body, small_body_stays_in_memory) {
  sluice::test::temp_dir d;
  body_builder b(d.path(), 1024);
  ASSERT_FALSE(b.append("hello "));
  ASSERT_FALSE(b.append("world"));
  EXPECT_FALSE(b.spilled());
  std::error_code ec;
  auto body = b.finish(ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(body->memory());
  EXPECT_EQ(body->to_string(), "hello world");
  EXPECT_TRUE(std::filesystem::is_empty(d.path()));
}

TEST(message_body, large_body_spills_and_file_is_removed_with_the_body) {
  sluice::test::temp_dir d;
  std::string chunk(1000, 'x');
  chunk[0] = '\0';  // binary-safe
  body_builder b(d.path(), 4096);
  for (int i = 0; i < 10; ++i)
    ASSERT_FALSE(b.append(chunk));
  EXPECT_TRUE(b.spilled());
  std::error_code ec;
  auto body = b.finish(ec);
  ASSERT_FALSE(ec);
  EXPECT_FALSE(body->memory());
  EXPECT_EQ(body->size(), 10000u);
  auto path = body->file();
  EXPECT_TRUE(std::filesystem::exists(path));
  std::string all;
  body->for_each_chunk(
      [&](std::string_view c) {
        all.append(c);
        return true;
      },
      4096);
  EXPECT_EQ(all.size(), 10000u);
  EXPECT_EQ(all.substr(0, 1000), chunk);
  body.reset();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(message_body, reset_drops_spilled_file) {
  sluice::test::temp_dir d;
  body_builder b(d.path(), 10);
  ASSERT_FALSE(b.append(std::string(100, 'a')));
  b.reset();
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(std::filesystem::is_empty(d.path()));
}

TEST(message_body, header_block_stops_at_empty_line) {
  auto b = message_body::from_string("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore");
  EXPECT_EQ(b->header_block(), "A: 1\r\nB: 2\r\n\r\n");
  auto lf = message_body::from_string("A: 1\nB: 2\n\nbody");
  EXPECT_EQ(lf->header_block(), "A: 1\nB: 2\n\n");
}

TEST(message_body, header_block_of_a_spilled_body_reads_only_the_header) {
  sluice::test::temp_dir d;
  body_builder b(d.path(), 16);
  std::string fields;
  for (int i = 0; i < 800; ++i)
    fields += "X-Field-" + std::to_string(i) + ": value\r\n";  // ~20KB
  ASSERT_FALSE(b.append(fields + "\r\n" + std::string(3 << 20, 'b')));
  std::error_code ec;
  auto body = b.finish(ec);
  auto head = body->header_block();
  EXPECT_EQ(head, fields + "\r\n");
  EXPECT_LT(head.capacity(), 64u * 1024) << "the header copy should not keep a large buffer";
  auto no_end = message_body::from_string("A: 1\r\nB: 2");  // no empty line at all
  EXPECT_EQ(no_end->header_block(), "A: 1\r\nB: 2");
}

// RFC 5322 §2.1: a first line that is not a header field starts the body; fields added to
// such a message go before it, followed by the empty line.
TEST(message_body, a_message_without_a_header_section_is_all_body) {
  EXPECT_EQ(message_body::from_string("hello world\r\nsecond: line\r\n")->header_block(), "");
  EXPECT_EQ(message_body::from_string("hi")->header_block(), "");
  EXPECT_EQ(message_body::from_string(" folded: first\r\n\r\nx")->header_block(), "");
  EXPECT_EQ(
      message_body::from_string("From me@example.com Sat Jan  1\r\nA: 1\r\n\r\nx")->header_block(),
      "");
  // Field names: printable ASCII but ':', WSP before the colon is the obsolete syntax.
  EXPECT_EQ(message_body::from_string("X-A_b.c: 1\r\n\r\nx")->header_block(), "X-A_b.c: 1\r\n\r\n");
  EXPECT_EQ(message_body::from_string("Subject : old\r\n\r\nx")->header_block(),
            "Subject : old\r\n\r\n");
  EXPECT_EQ(message_body::from_string(": no name\r\n\r\nx")->header_block(), "");
  EXPECT_EQ(message_body::from_string("Sub\xc3\xa9ject: 8-bit\r\n\r\nx")->header_block(), "");
  // A field line later on that is junk does not end the block (GMime skips it too).
  EXPECT_EQ(message_body::from_string("A: 1\r\njunk\r\nB: 2\r\n\r\nx")->header_block(),
            "A: 1\r\njunk\r\nB: 2\r\n\r\n");

  message m;
  m.raw = message_body::from_string("hello world\r\nsecond line\r\n");
  m.prepend_header("Received", "from x");
  m.append_header("Message-ID", "<id@x>");
  EXPECT_EQ(m.output(),
            "Received: from x\r\nMessage-ID: <id@x>\r\n\r\nhello world\r\nsecond line\r\n");
  message bdat;  // content without any line end
  bdat.raw = message_body::from_string("hi");
  bdat.append_header("Message-ID", "<id@x>");
  EXPECT_EQ(bdat.output(), "Message-ID: <id@x>\r\n\r\nhi");
  message empty;
  empty.raw = message_body::from_string("");
  empty.append_header("Message-ID", "<id@x>");
  EXPECT_EQ(empty.output(), "Message-ID: <id@x>\r\n");
}

TEST(message, rfc5322_date_in_utc_and_in_the_local_zone) {
  using namespace std::chrono;
  const system_clock::time_point t = sys_days{year{2026} / December / 4} + 18h + 28min + 54s;
  EXPECT_EQ(rfc5322_date(t), "Fri, 04 Dec 2026 18:28:54 +0000");
  EXPECT_EQ(rfc5322_date(sys_days{year{2001} / January / 1} + 5s),
            "Mon, 01 Jan 2001 00:00:05 +0000");
  const char* old = std::getenv("TZ");
  const std::string saved = old ? old : "";
  ::setenv("TZ", "XST+3:30", 1);  // POSIX form: 3 h 30 min west of UTC, no tzdata needed
  ::tzset();
  EXPECT_EQ(rfc5322_date(t, true), "Fri, 04 Dec 2026 14:58:54 -0330");
  if (old) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

TEST(message, no_edits_outputs_raw_bytes_exactly) {
  message m;
  std::string raw = "Subject: \xe2\x9c\x93\r\nX:  odd  spacing \r\n\r\nbody\0bin\r\n";
  m.raw = message_body::from_string(raw);
  EXPECT_EQ(m.output(), raw);
}

TEST(message, edits_apply_in_order_and_body_is_untouched) {
  message m;
  m.raw = message_body::from_string(
      "From: a@x\r\nSubject: hi\r\nX-Old: 1\r\nX-Old: 2\r\nBcc: secret\r\n\r\nBody: not a "
      "header\r\n");
  m.prepend_header("Received", "from a by b");
  m.prepend_header("Return-Path", "<a@x>");
  m.append_header("X-Added", "yes");
  m.set_header("subject", "new");
  m.remove_header("BCC");
  m.rename_header("X-Old", "X-Original-Old");
  EXPECT_EQ(m.output(),
            "Return-Path: <a@x>\r\nReceived: from a by b\r\nFrom: a@x\r\nsubject: new\r\n"
            "X-Original-Old: 1\r\nX-Original-Old: 2\r\nX-Added: yes\r\n\r\nBody: not a header\r\n");
}

TEST(message, remove_nth_removes_one_field_counting_earlier_edits) {
  message m;
  m.raw = message_body::from_string("X-A: 0\r\nB: b\r\nx-a: 1\r\nX-A: 2\r\n\r\nbody");
  m.prepend_header("X-A", "new");  // now index 0
  m.remove_nth_header("X-A", 2);   // "x-a: 1"
  m.remove_nth_header("X-A", 7);   // none: nothing happens
  EXPECT_EQ(m.output(), "X-A: new\r\nX-A: 0\r\nB: b\r\nX-A: 2\r\n\r\nbody");
  // The edit survives the JSON of the spool and the store.
  message back;
  back.raw = m.raw;
  back.edits = edits_from_json(edits_to_json(m.edits));
  EXPECT_EQ(back.output(), m.output());
}

TEST(message, edit_values_cannot_inject_headers) {
  message m;
  m.raw = message_body::from_string("A: 1\r\n\r\nb");
  m.append_header("X", "v\r\nBcc: evil@x\r\n\r\nbody");
  auto out = m.output();
  EXPECT_EQ(out.find("\r\nBcc:"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 5), "\r\n\r\nb");
}

TEST(message, long_values_are_folded) {
  message m;
  m.raw = message_body::from_string("A: 1\r\n\r\n");
  std::string v;
  for (int i = 0; i < 30; ++i)
    v += "word" + std::to_string(i) + " ";
  m.append_header("X-Long", v);
  auto head = m.output_headers();
  std::size_t pos = 0, longest = 0;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    longest = std::max(longest, e - pos);
    pos = e + 2;
  }
  EXPECT_LE(longest, 78u) << head;
  // Folding inserts only line ends (RFC 5322 §2.2.3): unfolded, the value is what was set.
  std::string unfolded = head.substr(0, head.size() - 2);  // "A: 1\r\n...X-Long: ...\r\n"
  for (std::size_t p; (p = unfolded.find("\r\n ")) != std::string::npos;)
    unfolded.erase(p, 2);
  EXPECT_NE(unfolded.find("X-Long: " + v.substr(0, v.size() - 1)), std::string::npos) << head;
}

TEST(message, edits_on_a_spilled_body_stream_the_rest) {
  sluice::test::temp_dir d;
  body_builder b(d.path(), 16);
  std::string raw = "Subject: s\r\n\r\n" + std::string(100000, 'z');
  ASSERT_FALSE(b.append(raw));
  std::error_code ec;
  message m;
  m.raw = b.finish(ec);
  m.prepend_header("Received", "x");
  EXPECT_EQ(m.output(), "Received: x\r\n" + raw);
}

TEST(message_id, unique_and_sorted_by_time) {
  std::set<std::string> ids;
  std::string prev;
  for (int i = 0; i < 2000; ++i) {
    auto id = make_message_id();
    EXPECT_EQ(id.size(), 22u);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 2000u);
  // Ids made one after another increase even within one millisecond, also across threads.
  std::vector<std::vector<std::string>> per_thread(4);
  {
    std::vector<std::thread> threads;
    for (auto& out : per_thread) {
      threads.emplace_back([&out] {
        for (int i = 0; i < 5000; ++i)
          out.push_back(make_message_id());
      });
    }
    for (auto& t : threads)
      t.join();
  }
  std::set<std::string> all;
  for (const auto& out : per_thread) {
    EXPECT_EQ(std::adjacent_find(out.begin(), out.end(),
                                 [](const auto& x, const auto& y) { return x >= y; }),
              out.end());
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 20000u);
  auto a = make_message_id();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  auto b = make_message_id();
  EXPECT_LT(a, b);
}

TEST(message_body, read_file_at_stays_inside_the_given_size) {
  sluice::test::temp_dir d;
  const auto path = d.path() / "f";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_TRUE(f);
    std::fputs("0123456789", f);
    std::fclose(f);
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::error_code ec = std::make_error_code(std::errc::io_error);
  char buf[16];
  EXPECT_EQ(read_file_at(fd, 10, 0, std::span<char>(buf, 4), ec), 4u);
  EXPECT_FALSE(ec);  // cleared on success
  EXPECT_EQ(std::string_view(buf, 4), "0123");
  EXPECT_EQ(read_file_at(fd, 10, 7, std::span<char>(buf, 16), ec), 3u);
  EXPECT_EQ(std::string_view(buf, 3), "789");
  EXPECT_EQ(read_file_at(fd, 6, 4, std::span<char>(buf, 16), ec), 2u);  // not past size
  EXPECT_EQ(std::string_view(buf, 2), "45");
  EXPECT_EQ(read_file_at(fd, 10, 10, std::span<char>(buf, 16), ec), 0u);
  EXPECT_EQ(read_file_at(fd, 20, 8, std::span<char>(buf, 16), ec), 2u);  // the file ends first
  EXPECT_FALSE(ec);
  ::close(fd);
  EXPECT_EQ(read_file_at(fd, 10, 0, std::span<char>(buf, 4), ec), 0u);  // closed: EBADF
  EXPECT_EQ(ec, std::error_code(EBADF, std::generic_category()));
}

}  // namespace
