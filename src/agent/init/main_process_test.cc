// The main process as the host sees it through sbx-init, with a fake event loop: a sandbox
// without a command (idle until told to stop), one made ahead of time (waiting for kStartMain),
// one whose command cannot start, and the lifetime deadline. Processes that run are covered by
// the privileged tests (tests/integration/runtime_lifecycle_test.cc).

#include "src/agent/init/main_process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/agent/init/fake_server_loop.h"
#include "src/base/clock.h"

namespace sbx::agent {
namespace {

class MainProcessTest : public ::testing::Test {
 protected:
  void Make(InitConfig config) {
    // Numeric: resolved without the host's /etc/passwd.
    config.user = std::to_string(getuid()) + ":" + std::to_string(getgid());
    main_ = std::make_unique<MainProcess>(loop_, std::move(config), null_fd_.get());
    main_->StartUnlessAwaited();
  }

  uint64_t Request(MsgType type, const std::string& payload = "") {
    Conn& conn = loop_.Open();
    uint64_t id = conn.id;
    EXPECT_TRUE(MainProcess::Handles(type));
    main_->Start(conn, Frame{type, payload});
    return id;
  }

  // The one frame answered on `id`, which is closed.
  Frame Answer(uint64_t id) {
    auto frame = loop_.Answer(id);
    EXPECT_TRUE(frame) << frame.error().ToString();
    return frame ? *frame : Frame{MsgType::kOk, ""};
  }

  StatusReply Status() {
    auto status = loop_.AnswerAs<StatusReply>(Request(MsgType::kStatus), MsgType::kStatusReply);
    EXPECT_TRUE(status) << status.error().ToString();
    return status.value_or(StatusReply{});
  }

  Code ErrorCode(const Frame& frame) {
    EXPECT_EQ(frame.type, MsgType::kError);
    auto reply = ErrorReply::Decode(frame.payload);
    return reply ? reply->ToError().code() : Code::kUnknown;
  }

  UniqueFd null_fd_{open("/dev/null", O_RDWR | O_CLOEXEC)};
  FakeServerLoop loop_;
  std::unique_ptr<MainProcess> main_;
};

TEST_F(MainProcessTest, IdleSandboxExitsCleanlyOnSigtermAndWaitersLearnIt) {
  Make(InitConfig{});
  EXPECT_TRUE(Status().main_running);
  uint64_t waiter = Request(MsgType::kWaitMain);
  EXPECT_TRUE(loop_.IsOpen(waiter));
  EXPECT_TRUE(loop_.Received(waiter).empty());
  uint64_t follower = Request(MsgType::kLogs, LogsRequest{0, true}.Encode());
  EXPECT_TRUE(loop_.IsOpen(follower));
  EXPECT_TRUE(loop_.Received(follower).empty());

  // Before the exit, it cannot be acknowledged.
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kAckExit))), Code::kFailedPrecondition);
  EXPECT_FALSE(main_->exit_acknowledged());

  main_->Signal(SIGTERM);
  auto status = loop_.AnswerAs<StatusReply>(waiter, MsgType::kStatusReply);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_TRUE(status->main_exited);
  EXPECT_FALSE(status->main_running);
  EXPECT_FALSE(status->main_exit.signaled);
  EXPECT_EQ(status->main_exit.exit_code, 0);
  EXPECT_EQ(Answer(follower).type, MsgType::kLogEnd);

  // After it, a wait answers at once, and the acknowledgement ends sbx-init.
  EXPECT_EQ(Answer(Request(MsgType::kWaitMain)).type, MsgType::kStatusReply);
  EXPECT_EQ(Answer(Request(MsgType::kAckExit)).type, MsgType::kOk);
  EXPECT_TRUE(main_->exit_acknowledged());
  EXPECT_TRUE(Status().exit_acknowledged);
}

TEST_F(MainProcessTest, SignalMainTakesOnlyRealSignals) {
  Make(InitConfig{});
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kSignalMain, SignalRequest{0}.Encode()))),
            Code::kInvalidArgument);
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kSignalMain, SignalRequest{65}.Encode()))),
            Code::kInvalidArgument);
  EXPECT_TRUE(Status().main_running);
  EXPECT_EQ(Answer(Request(MsgType::kSignalMain, SignalRequest{SIGKILL}.Encode())).type,
            MsgType::kOk);
  StatusReply status = Status();
  EXPECT_TRUE(status.main_exited);
  EXPECT_TRUE(status.main_exit.signaled);
  EXPECT_EQ(status.main_exit.signal, SIGKILL);
}

TEST_F(MainProcessTest, StartMainOnlyOnceAndOnlyWhenAwaited) {
  InitConfig awaiting;
  awaiting.await_start = true;
  awaiting.log_ring_bytes = 8192;
  Make(awaiting);
  StatusReply before = Status();
  EXPECT_FALSE(before.main_running);
  EXPECT_FALSE(before.main_exited);

  InitConfig real;
  real.cwd = "/work";
  real.log_ring_bytes = 1u << 20;
  EXPECT_EQ(Answer(Request(MsgType::kStartMain, real.Encode())).type, MsgType::kOk);
  EXPECT_TRUE(Status().main_running);
  EXPECT_EQ(main_->config().cwd, "/work");
  // The log ring keeps the size it was made with; the sandbox no longer awaits a start.
  EXPECT_EQ(main_->config().log_ring_bytes, 8192u);
  EXPECT_FALSE(main_->config().await_start);

  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kStartMain, real.Encode()))),
            Code::kFailedPrecondition);
}

TEST_F(MainProcessTest, StartMainOnASandboxThatStartedIsRefused) {
  Make(InitConfig{});
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kStartMain, InitConfig{}.Encode()))),
            Code::kFailedPrecondition);
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kStartMain, "\x01"))), Code::kInvalidArgument);
}

TEST_F(MainProcessTest, CommandThatCannotStartIsReportedInStatusAndLogs) {
  InitConfig config;
  config.argv = {"/nonexistent/command"};
  Make(config);
  StatusReply status = Status();
  EXPECT_TRUE(status.main_exited);
  EXPECT_FALSE(status.main_running);
  EXPECT_EQ(status.main_exit.exit_code, 127);
  EXPECT_FALSE(status.start_error.empty());

  uint64_t logs = Request(MsgType::kLogs, LogsRequest{0, true}.Encode());
  EXPECT_FALSE(loop_.IsOpen(logs));
  auto frames = loop_.Received(logs);
  ASSERT_EQ(frames.size(), 2u);
  ASSERT_EQ(frames[0].type, MsgType::kLogChunk);
  ASSERT_EQ(frames[1].type, MsgType::kLogEnd);
  auto chunk = LogChunk::Decode(frames[0].payload);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->stream, StreamId::kStderr);
  EXPECT_NE(chunk->data.find(status.start_error), std::string::npos);
  EXPECT_EQ(LogEnd::Decode(frames[1].payload)->next_offset, status.log_end);
}

TEST_F(MainProcessTest, LifetimeStopsTheSandbox) {
  InitConfig config;
  config.deadline_unix_ns = WallNanos() - 1;
  Make(config);
  int64_t deadline = main_->NextDeadline();
  ASSERT_GE(deadline, 0);
  EXPECT_LE(deadline, MonotonicMillis());
  main_->RunTimers(deadline - 1);
  EXPECT_TRUE(Status().main_running);
  main_->RunTimers(deadline);
  StatusReply status = Status();
  EXPECT_TRUE(status.main_exited);
  EXPECT_TRUE(status.lifetime_exceeded);
  EXPECT_EQ(main_->NextDeadline(), -1);
}

TEST_F(MainProcessTest, AnExtendedLifetimeIsTheOneThatCounts) {
  InitConfig config;
  config.deadline_unix_ns = WallNanos() - 1;
  Make(config);
  const int64_t hour_ns = 3600LL * 1000000000;
  EXPECT_EQ(
      Answer(Request(MsgType::kSetDeadline, DeadlineRequest{WallNanos() + hour_ns}.Encode())).type,
      MsgType::kOk);
  EXPECT_GT(main_->NextDeadline(), MonotonicMillis() + 3500 * 1000);
  main_->RunTimers(MonotonicMillis());
  EXPECT_TRUE(Status().main_running);
  EXPECT_FALSE(Status().lifetime_exceeded);
  EXPECT_EQ(Answer(Request(MsgType::kSetDeadline, DeadlineRequest{0}.Encode())).type, MsgType::kOk);
  EXPECT_EQ(main_->NextDeadline(), -1);
  EXPECT_EQ(ErrorCode(Answer(Request(MsgType::kSetDeadline, DeadlineRequest{-5}.Encode()))),
            Code::kInvalidArgument);
}

TEST_F(MainProcessTest, OtherRequestsAreNotItsOwn) {
  EXPECT_FALSE(MainProcess::Handles(MsgType::kExecStart));
  EXPECT_FALSE(MainProcess::Handles(MsgType::kStat));
  EXPECT_FALSE(MainProcess::Handles(MsgType::kOutput));
}

}  // namespace
}  // namespace sbx::agent
