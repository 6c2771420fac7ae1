// File: sandbox_fixture.h
//
// A fixture for privileged runtime tests: a busybox root filesystem with the probe payload,
// owned by the id-mapped range, and helpers to create sandboxes, run commands in them and check
// that removing them leaves nothing behind.

#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "src/agent/client.h"
#include "src/base/result.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/container.h"
#include "src/runtime/spec.h"
#include "src/testing/temp_dir.h"

namespace sbx::testing {

struct ExecResult {
  std::string out;
  std::string err;
  agent::ExitInfo exit;
  int code() const { return exit.signaled ? 128 + exit.signal : exit.exit_code; }
};

struct TestSandbox {
  std::string id;
  std::string bundle;
  runtime::SandboxState state;
  agent::AgentClient agent() const { return agent::AgentClient(state.socket_path); }
};

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  // A spec for the shared root filesystem with a tmpfs writable layer and no main process.
  runtime::RuntimeSpec BaseSpec();
  Result<TestSandbox> Create(const std::function<void(runtime::RuntimeSpec&)>& adjust = {});
  Status Destroy(TestSandbox& sandbox);
  Result<ExecResult> Exec(const TestSandbox& sandbox, const std::vector<std::string>& argv,
                          const std::string& stdin_data = "", int64_t timeout_ms = 30000,
                          const std::string& user = "");

  // Leftovers of sandboxes created by this test: cgroups, bundles, processes, loop devices.
  std::vector<std::string> Leftovers();

  static std::string BinDir();
  static const std::string& RootfsDir();
  runtime::CgroupDriver& cgroups() { return *cgroups_; }
  const std::string& run_dir() const { return run_dir_->path(); }

 private:
  std::unique_ptr<runtime::CgroupDriver> cgroups_;
  std::unique_ptr<TempDir> run_dir_;
  std::vector<TestSandbox> live_;
  std::vector<std::string> created_;
};

}  // namespace sbx::testing
