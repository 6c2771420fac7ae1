// The sandbox's root filesystem as programs see it: one consistent set of inode numbers across the
// image layers and the writable layer.

#include <gtest/gtest.h>

#include "src/base/strings.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class RootfsTest : public SandboxTest {};

std::vector<std::string> Lines(const std::string& text) {
  return Split(std::string(Trim(text)), '\n');
}

// readdir's d_ino is stat's st_ino (CPython's os.scandir, find -inum, du, rsync -H and every
// hard-link detection rely on it) for directories and files of the image layer, of the writable
// layer and copied up from one to the other, and for hard links of each; and every file reports
// the overlay's device, so that du -x and find -xdev stay on it.
TEST_F(RootfsTest, ReaddirAndStatAgreeOnInodeNumbers) {
  for (auto kind : {runtime::WritableKind::kLoop, runtime::WritableKind::kTmpfs}) {
    SCOPED_TRACE(kind == runtime::WritableKind::kLoop ? "loop" : "tmpfs");
    auto sb = Create([&](runtime::RuntimeSpec& s) { s.rootfs.writable.kind = kind; });
    ASSERT_TRUE(sb) << sb.error().ToString();
    auto setup = Exec(*sb, {"sh", "-c",
                            "mkdir -p /tmp/dir/sub && echo new > /tmp/dir/file && "
                            "ln /tmp/dir/file /tmp/dir/link && echo more >> /etc/passwd && "
                            "mkdir /work/new && touch /root/new"});
    ASSERT_TRUE(setup);
    ASSERT_EQ(setup->code(), 0) << setup->err;
    auto check = Exec(*sb, {"sbx-testpayload", "inodes", "/", "/etc", "/bin", "/tmp", "/tmp/dir",
                            "/tmp/dir/sub", "/root", "/work", "/home/app"});
    ASSERT_TRUE(check);
    EXPECT_EQ(check->code(), 0) << check->out;
    auto links = Exec(
        *sb, {"stat", "-c", "%i", "/etc/motd", "/etc/motd.link", "/tmp/dir/file", "/tmp/dir/link"});
    ASSERT_TRUE(links);
    auto inodes = Lines(links->out);
    ASSERT_EQ(inodes.size(), 4u) << links->out;
    EXPECT_EQ(inodes[0], inodes[1]);
    EXPECT_EQ(inodes[2], inodes[3]);
    auto devices = Exec(*sb, {"stat", "-c", "%d", "/", "/bin/busybox", "/etc", "/etc/passwd",
                              "/tmp/dir", "/tmp/dir/file"});
    ASSERT_TRUE(devices);
    auto numbers = Lines(devices->out);
    ASSERT_EQ(numbers.size(), 6u) << devices->out;
    for (const auto& n : numbers) EXPECT_EQ(n, numbers[0]) << devices->out;
  }
}

}  // namespace
}  // namespace sbx::testing
