// sbx-init's file operations as the host sees them, against a temporary directory standing in for
// the sandbox's root and a fake event loop: one answer per one-shot request and the connection
// closed, reads streamed only as fast as the host takes them, writes committed only at their end.

#include "src/agent/init/file_ops.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/agent/init/fake_server_loop.h"
#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::agent {
namespace {

class FileOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sys::MakeDirs(root_.path() + "/work"));
    auto fd = sys::Open(root_.path(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(fd);
    root_fd_ = std::move(*fd);
    config_.cwd = "/work";
    // Numeric: resolved without the host's /etc/passwd, and owning what is made is allowed.
    config_.user = std::to_string(getuid()) + ":" + std::to_string(getgid());
    files_ = std::make_unique<FileOps>(loop_, config_, root_fd_.get());
  }

  // Sends one request on a new connection; returns the connection's id.
  uint64_t Request(MsgType type, const std::string& payload) {
    Conn& conn = loop_.Open();
    uint64_t id = conn.id;
    EXPECT_TRUE(FileOps::Handles(type));
    files_->Start(conn, Frame{type, payload});
    return id;
  }

  std::string Host(const std::string& path) const { return root_.path() + path; }

  testing::TempDir root_{"sbx-fileops"};
  UniqueFd root_fd_;
  InitConfig config_;
  FakeServerLoop loop_;
  std::unique_ptr<FileOps> files_;
};

TEST_F(FileOpsTest, StatAnswersOnceAgainstTheWorkingDirectoryAndCloses) {
  ASSERT_TRUE(sys::WriteFile(Host("/work/f"), "hello"));
  uint64_t id = Request(MsgType::kStat, PathRequest{"f"}.Encode());
  auto info = loop_.AnswerAs<FileInfo>(id, MsgType::kFileInfo);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->type, FileType::kRegular);
  EXPECT_EQ(info->size, 5u);
}

TEST_F(FileOpsTest, ListDirAndErrorsEndTheConnection) {
  ASSERT_TRUE(sys::WriteFile(Host("/work/a"), ""));
  uint64_t listed = Request(MsgType::kListDir, PathRequest{"/work"}.Encode());
  auto entries = loop_.AnswerAs<DirEntries>(listed, MsgType::kDirEntries);
  ASSERT_TRUE(entries) << entries.error().ToString();
  ASSERT_EQ(entries->entries.size(), 1u);
  EXPECT_EQ(entries->entries[0].name, "a");

  uint64_t missing = Request(MsgType::kStat, PathRequest{"/nope"}.Encode());
  auto error = loop_.AnswerAs<ErrorReply>(missing, MsgType::kError);
  ASSERT_TRUE(error) << error.error().ToString();
  EXPECT_EQ(error->reason, "CWSANDBOX_FILE_NOT_FOUND");

  uint64_t malformed = Request(MsgType::kListDir, std::string("\x01\x00\xff\xff", 4));
  error = loop_.AnswerAs<ErrorReply>(malformed, MsgType::kError);
  ASSERT_TRUE(error) << error.error().ToString();
  EXPECT_EQ(error->ToError().code(), Code::kInvalidArgument);
}

TEST_F(FileOpsTest, ReadStreamsOnlyAsFastAsTheHostReads) {
  std::string content;
  for (int i = 0; content.size() < (3u << 20); ++i) content += std::to_string(i) + "\n";
  ASSERT_TRUE(sys::WriteFile(Host("/work/big"), content));
  loop_.SetHostReading(false);
  uint64_t id = Request(MsgType::kFileRead, FileRead{"big", 0}.Encode());
  Conn* conn = loop_.FindConn(id);
  ASSERT_NE(conn, nullptr);
  // The host reads nothing: sbx-init stops reading the file once the high-water mark is reached.
  EXPECT_GE(conn->pending(), kOutHighWater);
  EXPECT_LT(conn->pending(), kOutHighWater + (1u << 20));

  std::string streamed;
  bool ended = false;
  for (int round = 0; round < 100 && loop_.IsOpen(id); ++round) {
    loop_.Deliver(id);
    if (Conn* open = loop_.FindConn(id)) files_->OnConnDrained(*open);
  }
  loop_.Deliver(id);
  auto frames = loop_.Received(id);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.front().type, MsgType::kFileInfo);
  for (size_t i = 1; i < frames.size(); ++i) {
    if (frames[i].type == MsgType::kFileData) streamed += frames[i].payload;
    if (frames[i].type == MsgType::kFileEnd) ended = i + 1 == frames.size();
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(streamed, content);
  EXPECT_FALSE(loop_.IsOpen(id));
}

TEST_F(FileOpsTest, ReadOfAFileOverTheHostsLimitSendsOnlyItsInfo) {
  ASSERT_TRUE(sys::WriteFile(Host("/work/f"), std::string(100, 'x')));
  uint64_t id = Request(MsgType::kFileRead, FileRead{"f", 10}.Encode());
  auto info = loop_.AnswerAs<FileInfo>(id, MsgType::kFileInfo);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->size, 100u);
}

TEST_F(FileOpsTest, WriteIsCommittedAtItsEndOnly) {
  uint64_t id = Request(MsgType::kFileWrite, FileWrite{"out", 0640, true}.Encode());
  Conn* conn = loop_.FindConn(id);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->kind, Conn::Kind::kFileWrite);
  EXPECT_TRUE(files_->OnFrame(*conn, Frame{MsgType::kFileData, "abc"}));
  EXPECT_TRUE(files_->OnFrame(*conn, Frame{MsgType::kFileData, "def"}));
  EXPECT_FALSE(sys::ReadFile(Host("/work/out")));
  EXPECT_TRUE(files_->OnFrame(*conn, Frame{MsgType::kFileEnd, ""}));
  auto ok = loop_.Answer(id);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->type, MsgType::kOk);
  EXPECT_EQ(sys::ReadFile(Host("/work/out")).value_or(""), "abcdef");
}

TEST_F(FileOpsTest, AnyOtherFrameInAWriteEndsItUncommitted) {
  uint64_t id = Request(MsgType::kFileWrite, FileWrite{"out", 0644, true}.Encode());
  Conn* conn = loop_.FindConn(id);
  ASSERT_NE(conn, nullptr);
  EXPECT_TRUE(files_->OnFrame(*conn, Frame{MsgType::kFileData, "abc"}));
  EXPECT_FALSE(files_->OnFrame(*conn, Frame{MsgType::kStat, ""}));
  EXPECT_TRUE(loop_.Received(id).empty());
  EXPECT_FALSE(sys::ReadFile(Host("/work/out")));
}

TEST_F(FileOpsTest, MkdirSymlinkAndReadlinkAnswerOnce) {
  uint64_t made = Request(MsgType::kMkdir, MkdirRequest{"d/e", 0750, true}.Encode());
  auto info = loop_.AnswerAs<FileInfo>(made, MsgType::kFileInfo);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->path, "d/e");
  EXPECT_EQ(info->type, FileType::kDirectory);

  uint64_t linked = Request(MsgType::kSymlink, SymlinkRequest{"l", "/etc/passwd", false}.Encode());
  auto ok = loop_.Answer(linked);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(ok->type, MsgType::kOk);

  uint64_t read = Request(MsgType::kReadlink, PathRequest{"l"}.Encode());
  auto target = loop_.AnswerAs<LinkTarget>(read, MsgType::kLinkTarget);
  ASSERT_TRUE(target) << target.error().ToString();
  EXPECT_EQ(target->target, "/etc/passwd");

  uint64_t not_link = Request(MsgType::kReadlink, PathRequest{"d"}.Encode());
  EXPECT_TRUE(loop_.AnswerAs<ErrorReply>(not_link, MsgType::kError));
}

}  // namespace
}  // namespace sbx::agent
