// File operations through sbx-init: contents survive the trip byte for byte, and no path, however
// hostile, reaches outside the sandbox.

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class FilesTest : public SandboxTest {};

std::string Binary(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (auto& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

TEST_F(FilesTest, BinaryEmptyAndLargeRoundTrip) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.rootfs.writable.size_bytes = 512u << 20; });
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  std::string binary = Binary(70000);
  binary[10] = '\0';
  ASSERT_TRUE(agent.WriteFileFromString("/tmp/bin.dat", binary));
  EXPECT_EQ(*agent.ReadFileToString("/tmp/bin.dat", 0), binary);
  ASSERT_TRUE(agent.WriteFileFromString("/tmp/empty", ""));
  auto empty = agent.ReadFileToString("/tmp/empty", 0);
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
  std::string large = Binary(100u << 20);
  ASSERT_TRUE(agent.WriteFileFromString("/tmp/large", large, 0644, 120000));
  auto back = agent.ReadFileToString("/tmp/large", 0, 120000);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->size(), large.size());
  EXPECT_TRUE(*back == large);
  // The sandbox sees the same bytes: its byte count and a byte in the middle.
  auto wc = Exec(*sb, {"sh", "-c", "wc -c < /tmp/large"});
  ASSERT_TRUE(wc);
  EXPECT_EQ(std::string(Trim(wc->out)), std::to_string(large.size()));
}

TEST_F(FilesTest, WriteCreatesParentsAndReplacesAtomically) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  ASSERT_TRUE(agent.WriteFileFromString("/a/b/c/file.txt", "one"));
  EXPECT_EQ(*agent.ReadFileToString("/a/b/c/file.txt", 0), "one");
  ASSERT_TRUE(agent.WriteFileFromString("/a/b/c/file.txt", "two"));
  EXPECT_EQ(*agent.ReadFileToString("/a/b/c/file.txt", 0), "two");
  auto ls = Exec(*sb, {"sh", "-c", "ls -a /a/b/c"});
  ASSERT_TRUE(ls);
  EXPECT_EQ(ls->out, ".\n..\nfile.txt\n");  // no temporary file left
  // Relative paths resolve against the working directory.
  ASSERT_TRUE(agent.WriteFileFromString("rel.txt", "r"));
  EXPECT_EQ(*agent.ReadFileToString("/rel.txt", 0), "r");
}

TEST_F(FilesTest, ErrorsCarryReasons) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  auto missing = agent.ReadFileToString("/nope", 0);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_EQ(missing.error().reason(), "CWSANDBOX_FILE_NOT_FOUND");
  auto dir = agent.ReadFileToString("/tmp", 0);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().reason(), "CWSANDBOX_FILE_IS_DIRECTORY");
  auto write_dir = agent.WriteFileFromString("/tmp", "x");
  ASSERT_FALSE(write_dir);
  EXPECT_EQ(write_dir.error().reason(), "CWSANDBOX_FILE_IS_DIRECTORY");
  ASSERT_TRUE(agent.WriteFileFromString("/tmp/big", std::string(2000, 'x')));
  auto too_large = agent.ReadFileToString("/tmp/big", 1000);
  ASSERT_FALSE(too_large);
  EXPECT_EQ(too_large.error().reason(), "CWSANDBOX_FILE_TOO_LARGE");
  auto fifo = Exec(*sb, {"mkfifo", "/tmp/fifo"});
  ASSERT_TRUE(fifo);
  auto read_fifo = agent.ReadFileToString("/tmp/fifo", 0, 5000);
  ASSERT_FALSE(read_fifo);  // refused, not hung
  EXPECT_EQ(read_fifo.error().code(), Code::kInvalidArgument);
}

TEST_F(FilesTest, HostilePathsStayInside) {
  sbx::testing::TempDir outside("sbx-outside");
  ASSERT_TRUE(sys::WriteFile(outside.Sub("secret"), "host secret"));
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  std::string host_dir = outside.path();
  // Links the sandbox itself makes, aimed at the host path of the secret.
  auto links = Exec(*sb, {"sh", "-c",
                          "ln -s " + host_dir +
                              " /tmp/abs && ln -s ../../../../../../.. /tmp/up && "
                              "ln -s /tmp/up" +
                              host_dir + " /tmp/chain && ln -s /proc/1/root /tmp/magic"});
  ASSERT_TRUE(links);
  ASSERT_EQ(links->code(), 0) << links->err;
  for (const std::string& path : std::vector<std::string>{
           host_dir + "/secret", "/../../.." + host_dir + "/secret", "/tmp/abs/secret",
           "/tmp/up" + host_dir + "/secret", "/tmp/chain/secret",
           "../../../.." + host_dir + "/secret", "/tmp/magic" + host_dir + "/secret",
           "/proc/self/root" + host_dir + "/secret"}) {
    auto read = agent.ReadFileToString(path, 0);
    if (read) {
      EXPECT_NE(*read, "host secret") << path;
    }
    auto written = agent.WriteFileFromString(path, "pwned");
    (void)written;
  }
  EXPECT_EQ(*sys::ReadFile(outside.Sub("secret")), "host secret");
  // Whatever was written landed inside the sandbox (the host directory name exists there).
  auto inside = Exec(*sb, {"sh", "-c", "cat " + host_dir + "/secret 2>/dev/null || echo none"});
  ASSERT_TRUE(inside);
  EXPECT_NE(inside->out, "host secret");
}

TEST_F(FilesTest, StatAndListDirectory) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  ASSERT_TRUE(agent.WriteFileFromString("/d/x", "12345"));
  ASSERT_TRUE(agent.WriteFileFromString("/d/y", ""));
  auto info = agent.Stat("/d/x");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->type, agent::FileType::kRegular);
  EXPECT_EQ(info->size, 5u);
  auto list = agent.ListDir("/d");
  ASSERT_TRUE(list);
  std::vector<std::string> names;
  for (const auto& e : list->entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"x", "y"}));
}

TEST_F(FilesTest, MountedFilesAreReadOnly) {
  sbx::testing::TempDir src;
  ASSERT_TRUE(sys::WriteFile(src.Sub("content"), "print('hi')\n"));
  auto sb = Create([&](runtime::RuntimeSpec& s) {
    s.files.push_back({"/app/train.py", src.Sub("content"), 0444});
  });
  ASSERT_TRUE(sb) << sb.error().ToString();
  auto cat = Exec(*sb, {"cat", "/app/train.py"});
  ASSERT_TRUE(cat);
  EXPECT_EQ(cat->out, "print('hi')\n");
  auto write = Exec(*sb, {"sh", "-c", "echo x > /app/train.py"});
  ASSERT_TRUE(write);
  EXPECT_NE(write->code(), 0);
  auto rm = Exec(*sb, {"rm", "-f", "/app/train.py"});
  ASSERT_TRUE(rm);
  EXPECT_NE(rm->code(), 0);
  auto api_write = sb->agent().WriteFileFromString("/app/train.py", "x");
  EXPECT_FALSE(api_write);
  EXPECT_EQ(*sb->agent().ReadFileToString("/app/train.py", 0), "print('hi')\n");
}

}  // namespace
}  // namespace sbx::testing
