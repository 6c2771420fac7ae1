#include "src/agent/protocol.h"

#include <gtest/gtest.h>

namespace sbx::agent {
namespace {

TEST(ProtocolTest, ExecStartRoundTrip) {
  ExecStart m;
  m.argv = {"python", "-c", "print(1)"};
  m.env = {"A=1", "B=2"};
  m.cwd = "/work";
  m.user = "1000:1000";
  m.tty = true;
  m.rows = 24;
  m.cols = 80;
  m.stdin_open = true;
  m.timeout_ms = 1500;
  auto d = ExecStart::Decode(m.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->argv, m.argv);
  EXPECT_EQ(d->env, m.env);
  EXPECT_EQ(d->cwd, "/work");
  EXPECT_EQ(d->user, "1000:1000");
  EXPECT_TRUE(d->tty);
  EXPECT_EQ(d->rows, 24u);
  EXPECT_EQ(d->cols, 80u);
  EXPECT_TRUE(d->stdin_open);
  EXPECT_EQ(d->timeout_ms, 1500);
}

TEST(ProtocolTest, ExitInfoRejectsImpossibleValues) {
  ExitInfo e;
  e.exit_code = 300;
  EXPECT_FALSE(ExitInfo::Decode(e.Encode()));
  e.exit_code = 0;
  e.signaled = true;
  e.signal = 0;
  EXPECT_FALSE(ExitInfo::Decode(e.Encode()));
  e.signal = 9;
  auto d = ExitInfo::Decode(e.Encode());
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->signaled);
  EXPECT_EQ(d->signal, 9);
}

TEST(ProtocolTest, ErrorReplyCarriesReasonAndBoundsText) {
  Error e = Error::NotFound("no such file").WithReason("CWSANDBOX_FILE_NOT_FOUND");
  ErrorReply r = ErrorReply::FromError(e);
  r.message += std::string(10000, 'x');
  auto d = ErrorReply::Decode(r.Encode());
  ASSERT_TRUE(d);
  EXPECT_LE(d->message.size(), 4096u);
  Error back = d->ToError();
  EXPECT_EQ(back.code(), Code::kNotFound);
  EXPECT_EQ(back.reason(), "CWSANDBOX_FILE_NOT_FOUND");
}

TEST(ProtocolTest, ErrorReplyWithUnknownCodeIsUnknown) {
  ErrorReply r;
  r.code = 999;
  r.message = "x";
  EXPECT_EQ(r.ToError().code(), Code::kUnknown);
}

TEST(ProtocolTest, StatusReplyRoundTripAndValidation) {
  StatusReply s;
  s.init_version = 1;
  s.main_pid = 2;
  s.main_exited = true;
  s.main_exit.exit_code = 3;
  s.log_start = 5;
  s.log_end = 10;
  auto d = StatusReply::Decode(s.Encode());
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->main_exited);
  EXPECT_EQ(d->main_exit.exit_code, 3);
  EXPECT_EQ(d->log_end, 10u);
  s.log_start = 11;
  EXPECT_FALSE(StatusReply::Decode(s.Encode()));
}

TEST(ProtocolTest, DirEntriesRoundTrip) {
  DirEntries d;
  d.entries.push_back({"a", FileType::kRegular, 3, 0644});
  d.entries.push_back({"b", FileType::kDirectory, 0, 0755});
  d.truncated = true;
  auto r = DirEntries::Decode(d.Encode());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[1].name, "b");
  EXPECT_EQ(r->entries[1].type, FileType::kDirectory);
  EXPECT_TRUE(r->truncated);
}

TEST(ProtocolTest, MkdirRequestRoundTripDropsFileTypeBits) {
  MkdirRequest m{"/work/dir", 040755, true};
  auto d = MkdirRequest::Decode(m.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->path, "/work/dir");
  EXPECT_EQ(d->mode, 0755u);
  EXPECT_TRUE(d->make_parents);
  // Defaults survive an empty payload (an older host sends no optional fields).
  auto empty = MkdirRequest::Decode("");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->mode, 0755u);
  EXPECT_FALSE(empty->make_parents);
}

TEST(ProtocolTest, SymlinkRequestRoundTripAndValidation) {
  SymlinkRequest m{"/work/link", "../target", false};
  auto d = SymlinkRequest::Decode(m.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->path, "/work/link");
  EXPECT_EQ(d->target, "../target");
  EXPECT_FALSE(d->make_parents);
  m.target = "";
  EXPECT_FALSE(SymlinkRequest::Decode(m.Encode()));
  m.target = std::string(5000, 'a');
  EXPECT_FALSE(SymlinkRequest::Decode(m.Encode()));
  m.target = std::string("a\0b", 3);
  EXPECT_FALSE(SymlinkRequest::Decode(m.Encode()));
}

TEST(ProtocolTest, LinkTargetFromInitIsBounded) {
  auto d = LinkTarget::Decode(LinkTarget{"/usr/bin/python3.11"}.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->target, "/usr/bin/python3.11");
  // A hostile sbx-init cannot hand the host an empty, huge or NUL-carrying target.
  EXPECT_FALSE(LinkTarget::Decode(LinkTarget{""}.Encode()));
  EXPECT_FALSE(LinkTarget::Decode(LinkTarget{std::string(4096, 'x')}.Encode()));
  EXPECT_FALSE(LinkTarget::Decode(LinkTarget{std::string("a\0", 2)}.Encode()));
  // A truncated field is malformed, not a crash.
  std::string bytes = LinkTarget{"abc"}.Encode();
  EXPECT_FALSE(LinkTarget::Decode(bytes.substr(0, bytes.size() - 1)));
}

TEST(ProtocolTest, NewRequestTypesHaveNames) {
  EXPECT_STREQ(MsgTypeName(MsgType::kMkdir), "mkdir");
  EXPECT_STREQ(MsgTypeName(MsgType::kSymlink), "symlink");
  EXPECT_STREQ(MsgTypeName(MsgType::kReadlink), "readlink");
  EXPECT_STREQ(MsgTypeName(MsgType::kLinkTarget), "link-target");
}

TEST(ProtocolTest, InitConfigClampsRing) {
  InitConfig c;
  c.argv = {"sh"};
  c.log_ring_bytes = 1;
  c.cwd = "";
  auto d = InitConfig::Decode(c.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->log_ring_bytes, 4096u);
  EXPECT_EQ(d->cwd, "/");
}

TEST(ProtocolTest, InitConfigRoundTripsEveryField) {
  InitConfig c;
  c.argv = {"python", "-c", "print(1)"};
  c.env = {"A=1", "B=2"};
  c.cwd = "/work";
  c.user = "1000:1000";
  c.log_ring_bytes = 1u << 16;
  c.deadline_unix_ns = 1234567890123;
  c.stop_grace_ms = 250;
  c.await_start = true;
  auto d = InitConfig::Decode(c.Encode());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->argv, c.argv);
  EXPECT_EQ(d->env, c.env);
  EXPECT_EQ(d->cwd, c.cwd);
  EXPECT_EQ(d->user, c.user);
  EXPECT_EQ(d->log_ring_bytes, c.log_ring_bytes);
  EXPECT_EQ(d->deadline_unix_ns, c.deadline_unix_ns);
  EXPECT_EQ(d->stop_grace_ms, c.stop_grace_ms);
  EXPECT_TRUE(d->await_start);
  c.await_start = false;
  EXPECT_FALSE(InitConfig::Decode(c.Encode())->await_start);
}

}  // namespace
}  // namespace sbx::agent
