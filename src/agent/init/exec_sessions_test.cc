// Exec sessions refuse what cannot run before anything is started, with an error naming what is
// wrong, and the connection ends. Sessions that run processes are covered by the privileged tests
// (tests/integration/runtime_exec_test.cc).

#include "src/agent/init/exec_sessions.h"

#include <gtest/gtest.h>

#include "src/agent/init/fake_server_loop.h"

namespace sbx::agent {
namespace {

class ExecSessionsTest : public ::testing::Test {
 protected:
  // The one error answered to `request` on a new connection, which is closed.
  Error Refusal(const std::string& payload) {
    Conn& conn = loop_.Open();
    uint64_t id = conn.id;
    execs_.Start(conn, payload);
    auto frames = loop_.Received(id);
    EXPECT_FALSE(loop_.IsOpen(id));
    EXPECT_TRUE(loop_.watched().empty());
    if (frames.size() != 1 || frames[0].type != MsgType::kError) {
      ADD_FAILURE() << "expected one error frame, got " << frames.size() << " frames";
      return Error::Internal("no refusal");
    }
    return ErrorReply::Decode(frames[0].payload).value_or(ErrorReply{}).ToError();
  }

  InitConfig config_;
  FakeServerLoop loop_;
  ExecSessions execs_{loop_, config_, -1};
};

TEST_F(ExecSessionsTest, RefusesAnEmptyCommand) {
  Error error = Refusal(ExecStart{}.Encode());
  EXPECT_EQ(error.code(), Code::kInvalidArgument);
  EXPECT_EQ(error.message(), "empty command");
}

TEST_F(ExecSessionsTest, RefusesARelativeWorkingDirectory) {
  ExecStart request;
  request.argv = {"true"};
  request.user = "0:0";
  request.cwd = "work";
  Error error = Refusal(request.Encode());
  EXPECT_EQ(error.code(), Code::kInvalidArgument);
  EXPECT_EQ(error.message(), "cwd must be absolute");
}

TEST_F(ExecSessionsTest, RefusesAMalformedRequest) {
  // A u64 field (tty) of 1 byte.
  std::string payload("\x05\x00\x01\x00\x00\x00\x01", 7);
  EXPECT_EQ(Refusal(payload).code(), Code::kInvalidArgument);
}

TEST_F(ExecSessionsTest, KnowsOnlyItsOwnProcessesAndHasNoDeadlineWithoutSessions) {
  EXPECT_FALSE(execs_.OnExit(12345, 0));
  EXPECT_EQ(execs_.NextDeadline(), -1);
  execs_.RunTimers(0);
  execs_.Kill(1);
  execs_.Detach(1);
  execs_.OnOutput(1, false);
  execs_.OnStdinWritable(1);
}

}  // namespace
}  // namespace sbx::agent
