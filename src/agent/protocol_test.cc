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

// The codecs are written by hand (ARCHITECTURE.md, Decisions). What keeps a field from being half
// added: each message's number of fields is pinned here, so a new one does not compile until it is
// given a value below, and then the round trip fails unless Encode and Decode both carry it.
struct AnyValue {
  template <typename T>
  operator T() const;  // NOLINT(google-explicit-constructor): only ever unevaluated
};

template <typename T, typename... Fields>
constexpr size_t FieldCount() {
  if constexpr (requires { T{Fields{}..., AnyValue{}}; }) {
    return FieldCount<T, Fields..., AnyValue>();
  } else {
    return sizeof...(Fields);
  }
}

template <typename Message>
void ExpectRoundTrip(const Message& message) {
  auto decoded = Message::Decode(message.Encode());
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_TRUE(*decoded == message) << ::testing::internal::GetTypeName<Message>();
  EXPECT_FALSE(*decoded == Message{}) << ::testing::internal::GetTypeName<Message>();
}

TEST(ProtocolTest, EveryFieldOfEveryMessageRoundTrips) {
  static_assert(FieldCount<ExecStart>() == 9);
  ExpectRoundTrip(ExecStart{{"sh", "-c", "x"}, {"A=1"}, "/w", "app", true, 24, 80, true, 1500});
  static_assert(FieldCount<Resize>() == 2);
  ExpectRoundTrip(Resize{50, 132});
  static_assert(FieldCount<SignalRequest>() == 1);
  ExpectRoundTrip(SignalRequest{15});
  static_assert(FieldCount<DeadlineRequest>() == 1);
  ExpectRoundTrip(DeadlineRequest{1796677445000000000});
  static_assert(FieldCount<ExecStarted>() == 1);
  ExpectRoundTrip(ExecStarted{4242});
  static_assert(FieldCount<Output>() == 2);
  ExpectRoundTrip(Output{StreamId::kStderr, std::string("a\0b", 3)});
  static_assert(FieldCount<ExitInfo>() == 4);
  ExpectRoundTrip(ExitInfo{3, 9, true, true});
  ExpectRoundTrip(ExitInfo{255, 0, false, true});
  static_assert(FieldCount<ErrorReply>() == 4);
  ExpectRoundTrip(ErrorReply{5, 2, "no such file", "CWSANDBOX_FILE_NOT_FOUND"});
  static_assert(FieldCount<FileRead>() == 2);
  ExpectRoundTrip(FileRead{"/f", 1u << 30});
  static_assert(FieldCount<FileWrite>() == 3);
  ExpectRoundTrip(FileWrite{"/f", 0600, false});
  static_assert(FieldCount<FileInfo>() == 7);
  ExpectRoundTrip(FileInfo{"/l", FileType::kSymlink, 7, 0777, -5, 1000, 1001});
  static_assert(FieldCount<PathRequest>() == 1);
  ExpectRoundTrip(PathRequest{"/p"});
  static_assert(FieldCount<MkdirRequest>() == 3);
  ExpectRoundTrip(MkdirRequest{"/d", 0700, true});
  static_assert(FieldCount<SymlinkRequest>() == 3);
  ExpectRoundTrip(SymlinkRequest{"/l", "t", true});
  static_assert(FieldCount<LinkTarget>() == 1);
  ExpectRoundTrip(LinkTarget{"t"});
  static_assert(FieldCount<DirEntry>() == 4);
  static_assert(FieldCount<DirEntries>() == 2);
  ExpectRoundTrip(
      DirEntries{{{"a", FileType::kOther, 1, 0600}, {"b", FileType::kRegular, 2, 0}}, true});
  static_assert(FieldCount<StatusReply>() == 12);
  ExpectRoundTrip(
      StatusReply{1, 7, true, true, ExitInfo{0, 15, true, false}, 10, 20, true, true, "e", 3, 9});
  static_assert(FieldCount<LogsRequest>() == 2);
  ExpectRoundTrip(LogsRequest{12, true});
  static_assert(FieldCount<LogChunk>() == 4);
  ExpectRoundTrip(LogChunk{8, 99, StreamId::kStderr, "out"});
  static_assert(FieldCount<LogEnd>() == 2);
  ExpectRoundTrip(LogEnd{30, 4});
  static_assert(FieldCount<InitConfig>() == 9);
  ExpectRoundTrip(InitConfig{{"sh"}, {"A=1"}, "/w", "app", 8192, 123456789, 250, true, 0x2001});
}

}  // namespace
}  // namespace sbx::agent
