// The breakout table: hostile layers in the style of containerd's pkg/archive TestBreakouts and
// moby's go-archive victim tests. Every case must either be refused or stay inside the layer
// directory; nothing outside it (the "victim" tree) may change.

#include "src/image/layer_unpacker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <functional>
#include <map>

#include <gtest/gtest.h>

#include "src/base/strings.h"
#include "src/image/digest.h"
#include "src/image/testing/tar_builder.h"
#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::image {
namespace {

using sbx::testing::TempDir;
using testing::TarBuilder;

bool IsRoot() { return geteuid() == 0; }

// A snapshot of a tree: path -> "type mode size content-hash/link".
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  std::function<void(const std::string&)> walk = [&](const std::string& rel) {
    std::string path = rel.empty() ? root : root + "/" + rel;
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string sub = rel.empty() ? name : rel + "/" + name;
      std::string full = root + "/" + sub;
      struct stat st {};
      if (lstat(full.c_str(), &st) != 0) continue;
      std::string desc = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + " " +
                         std::to_string(st.st_size);
      if (S_ISREG(st.st_mode)) desc += " " + Sha256Digest(*sys::ReadFile(full, 1u << 26));
      if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t n = readlink(full.c_str(), buf, sizeof buf);
        desc += " -> " + std::string(buf, n > 0 ? n : 0);
      }
      char xattrs[4096];
      ssize_t xn = llistxattr(full.c_str(), xattrs, sizeof xattrs);
      if (xn > 0) desc += " xattrs:" + std::string(xattrs, xn);
      out[sub] = desc;
      if (S_ISDIR(st.st_mode)) walk(sub);
    }
    closedir(d);
  };
  walk("");
  return out;
}

class UnpackerTest : public ::testing::Test {
 public:
  UnpackOptions Options() {
    UnpackOptions o;
    o.map_ids = IsRoot();
    o.host_uid = 1000000;
    o.host_gid = 1000000;
    o.opaque_xattr = IsRoot() ? "trusted.overlay.opaque" : "user.overlay.opaque";
    o.limits.max_bytes = 64u << 20;
    return o;
  }

 protected:
  void SetUp() override {
    // <tmp>/victim is outside the layer; <tmp>/layer is where layers go.
    victim_ = dir_.Sub("victim");
    layer_ = dir_.Sub("layer");
    ASSERT_TRUE(sys::MakeDirs(victim_ + "/etc"));
    ASSERT_TRUE(sys::WriteFile(victim_ + "/secret", "secret", 0400));
    ASSERT_TRUE(sys::WriteFile(victim_ + "/etc/passwd", "root:x:0:0::/:/bin/sh\n", 0644));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    before_ = Snapshot(dir_.path() + "/victim");
  }

  Result<UnpackStats> Unpack(const std::string& blob, UnpackOptions options) {
    std::string path = dir_.Sub("blob");
    EXPECT_TRUE(sys::WriteFile(path, blob));
    auto fd = sys::Open(path, O_RDONLY);
    EXPECT_TRUE(fd);
    return UnpackLayer(fd->get(), layer_, options);
  }
  Result<UnpackStats> Unpack(const TarBuilder& tar, Compression c = Compression::kNone) {
    return Unpack(tar.Finish(c), Options());
  }

  bool VictimUnchanged() { return Snapshot(victim_) == before_; }
  std::string L(const std::string& rel) { return layer_ + "/" + rel; }
  static bool Exists(const std::string& path) { return sys::PathExists(path); }
  static std::string Read(const std::string& path) {
    auto r = sys::ReadFile(path);
    return r ? *r : "<missing>";
  }

  TempDir dir_{"sbx-unpack"};
  std::string victim_;
  std::string layer_;
  std::map<std::string, std::string> before_;
};

struct BreakoutCase {
  const char* name;
  std::function<void(TarBuilder&, const std::string& victim)> build;
  bool refused;  // else contained
  std::function<void(UnpackerTest&, const std::string& layer, const std::string& victim)> check;
};

TEST_F(UnpackerTest, BreakoutTable) {
  const BreakoutCase cases[] = {
      {"AbsolutePath", [](TarBuilder& t, const std::string&) { t.File("/etc/passwd", "layer"); },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_EQ(Read(l + "/etc/passwd"), "layer");
       }},
      {"DotDot", [](TarBuilder& t, const std::string&) { t.File("../escape", "x"); }, true, {}},
      {"DotDotDeep",
       [](TarBuilder& t, const std::string&) { t.File("a/../../../victim/evil", "x"); }, true, {}},
      {"SlashDotDot",
       [](TarBuilder& t, const std::string&) { t.File("/../victim/slash-dotdot", "x"); }, true,
       {}},
      {"DotDotInside", [](TarBuilder& t, const std::string&) { t.File("a/../b", "x"); }, false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_EQ(Read(l + "/b"), "x");
       }},
      {"SymlinkAbsolute",
       [](TarBuilder& t, const std::string& v) {
         t.Dir(v).Symlink("localvictim", v).File("localvictim/unbroken", "x");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string& v) {
         // Resolved as if the layer root were "/": lands under <layer>/<victim path>.
         EXPECT_EQ(Read(l + v + "/unbroken"), "x");
       }},
      {"SymlinkUpAndOut",
       [](TarBuilder& t, const std::string&) {
         t.Dir("dummy").Symlink("up", "dummy/../../../../victim").Dir("victim").File("up/file", "x");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_EQ(Read(l + "/victim/file"), "x");
       }},
      {"SymlinkMultipleRelative",
       [](TarBuilder& t, const std::string&) {
         t.Symlink("a", "b").Symlink("b", "../../victim").Dir("victim").File("a/x", "x");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_EQ(Read(l + "/victim/x"), "x");
       }},
      {"SymlinkAbsoluteMissingTarget",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("localvictim", v).File("localvictim/unbroken", "x");
       },
       true, {}},
      {"SymlinkMultipleAbsolute",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("a", "/b").Symlink("b", v + "/etc").File("a/passwd", "pwned");
       },
       true,  // the clamped target does not exist inside the layer
       {}},
      {"SymlinkEmptyTarget", [](TarBuilder& t, const std::string&) { t.Symlink("s", ""); }, true,
       {}},
      {"SymlinkNamedDotDot",
       [](TarBuilder& t, const std::string& v) { t.Dir("dir").Symlink("dir/..", v); }, true, {}},
      {"SymlinkSlashEnded",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("loophole/", v).File("loophole/file", "x");
       },
       true, {}},
      {"SymlinkLoop",
       [](TarBuilder& t, const std::string&) { t.Symlink("a", "a").File("a/x", "x"); }, true, {}},
      {"SymlinkOverrideDirectory",
       [](TarBuilder& t, const std::string& v) {
         t.Dir("d").Symlink("d", v).File("d/x", "x");
       },
       true, {}},
      {"SymlinkOverrideDirectoryRelative",
       [](TarBuilder& t, const std::string&) {
         t.Dir("d").Dir("inside").Symlink("d", "../../../../inside").File("d/x", "x");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_EQ(Read(l + "/inside/x"), "x");
       }},
      {"DirectoryOverrideSymlink",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("d", v).Dir("d").File("d/secret", "mine");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         struct stat st {};
         ASSERT_EQ(lstat((l + "/d").c_str(), &st), 0);
         EXPECT_TRUE(S_ISDIR(st.st_mode));
         EXPECT_EQ(Read(l + "/d/secret"), "mine");
       }},
      {"FileOverSymlink",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("f", v + "/secret").File("f", "pwned", 0777);
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         struct stat st {};
         ASSERT_EQ(lstat((l + "/f").c_str(), &st), 0);
         EXPECT_TRUE(S_ISREG(st.st_mode));
         EXPECT_EQ(Read(l + "/f"), "pwned");
       }},
      {"HardlinkAbsolute",
       [](TarBuilder& t, const std::string& v) { t.Hardlink("hl", v + "/secret"); }, true, {}},
      {"HardlinkRelative",
       [](TarBuilder& t, const std::string&) { t.Hardlink("hl", "../victim/secret"); }, true, {}},
      {"HardlinkRelativeLong",
       [](TarBuilder& t, const std::string&) {
         t.Hardlink("hl", "../../../../../../../etc/passwd");
       },
       true, {}},
      {"HardlinkDownAndOut",
       [](TarBuilder& t, const std::string&) {
         t.Dir("breakouts").Symlink("breakouts/d1", "../../victim").Hardlink("breakouts/hl",
                                                                              "breakouts/d1/secret");
       },
       true, {}},
      {"HardlinkThroughSymlinkInside",
       [](TarBuilder& t, const std::string&) {
         t.Dir("real").File("real/f", "data").Symlink("alias", "/real").Hardlink("h", "alias/f");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         struct stat a {}, b {};
         ASSERT_EQ(stat((l + "/real/f").c_str(), &a), 0);
         ASSERT_EQ(stat((l + "/h").c_str(), &b), 0);
         EXPECT_EQ(a.st_ino, b.st_ino);
       }},
      {"HardlinkSymlinkChmod",
       [](TarBuilder& t, const std::string& v) {
         // A hardlink to a symlink that points at an outside file; mode 0777 on the hardlink
         // must not reach the outside file.
         t.Symlink("sym", v + "/secret").Hardlink("hl", "sym");
         TarBuilder::Entry e;
         e.path = "hl";
         e.type = 0040000;  // a directory entry over it: must replace, not chmod through
         e.mode = 0777;
         t.Add(e);
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string& v) {
         struct stat st {};
         ASSERT_EQ(stat((v + "/secret").c_str(), &st), 0);
         EXPECT_EQ(st.st_mode & 07777, 0400u);
         ASSERT_EQ(lstat((l + "/sym").c_str(), &st), 0);
         EXPECT_TRUE(S_ISLNK(st.st_mode));
       }},
      {"HardlinkToDirectory",
       [](TarBuilder& t, const std::string&) { t.Dir("d").Hardlink("h", "d"); }, true, {}},
      {"HardlinkMissingTarget",
       [](TarBuilder& t, const std::string&) { t.Hardlink("h", "nope"); }, true, {}},
      {"HardlinkToRoot", [](TarBuilder& t, const std::string&) { t.Hardlink("h", "/"); }, true,
       {}},
      {"WhiteoutRoot", [](TarBuilder& t, const std::string&) { t.File(".wh..", ""); }, true, {}},
      {"WhiteoutRootParent", [](TarBuilder& t, const std::string&) { t.File(".wh...", ""); }, true,
       {}},
      {"WhiteoutParent",
       [](TarBuilder& t, const std::string&) { t.Dir("etc").File("etc/.wh...", ""); }, true, {}},
      {"WhiteoutCurrentDirectory",
       [](TarBuilder& t, const std::string&) { t.Dir("etc").File("etc/.wh..", ""); }, true, {}},
      {"WhiteoutEmptyName", [](TarBuilder& t, const std::string&) { t.File(".wh.", ""); }, true,
       {}},
      {"WhiteoutRelativePath",
       [](TarBuilder& t, const std::string&) { t.File("../.wh.victim", ""); }, true, {}},
      {"WhiteoutSymlinkPath",
       [](TarBuilder& t, const std::string& v) {
         t.Dir(v).Symlink("s", v).File("s/.wh.secret", "");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string& v) {
         // The whiteout is created inside the layer (under the clamped path).
         struct stat st {};
         ASSERT_EQ(lstat((l + v + "/secret").c_str(), &st), 0);
         EXPECT_TRUE(S_ISCHR(st.st_mode));
       }},
      {"WhiteoutSymlink",
       [](TarBuilder& t, const std::string& v) {
         t.Symlink("link", v + "/secret").File(".wh.link", "");
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         struct stat st {};
         ASSERT_EQ(lstat((l + "/link").c_str(), &st), 0);
         EXPECT_TRUE(S_ISCHR(st.st_mode));
       }},
      {"WhiteoutDeadSymlinkParent",
       [](TarBuilder& t, const std::string&) {
         t.Symlink("dead", "/nonexistent/x").File("dead/.wh.file", "");
       },
       true, {}},
      {"OpaqueThroughSymlink",
       [](TarBuilder& t, const std::string& v) {
         t.Dir(v).Symlink("s", v).File("s/.wh..wh..opq", "");
       },
       false,
       [](UnpackerTest& test, const std::string& l, const std::string& v) {
         char value[4];
         EXPECT_EQ(getxattr((l + v).c_str(), test.Options().opaque_xattr.c_str(), value,
                            sizeof value),
                   1);
       }},
      {"DeviceNodesSkipped",
       [](TarBuilder& t, const std::string&) {
         t.Dir("dev").CharDevice("dev/sda", 8, 0).CharDevice("dev/mem", 1, 1);
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         EXPECT_FALSE(Exists(l + "/dev/sda"));
         EXPECT_FALSE(Exists(l + "/dev/mem"));
       }},
      {"FileNamedLikeRoot", [](TarBuilder& t, const std::string&) { t.File("./", "x"); }, true,
       {}},
      {"HugePath",
       [](TarBuilder& t, const std::string&) {
         std::string path;
         while (path.size() < 5000) path += "abcdefghij/";
         t.File(path + "f", "x");
       },
       true, {}},
      {"HugeComponent",
       [](TarBuilder& t, const std::string&) { t.File(std::string(300, 'n'), "x"); }, true, {}},
      {"TrustedXattrDropped",
       [](TarBuilder& t, const std::string&) {
         t.Dir("d").Xattr("trusted.overlay.opaque", "y").Xattr("user.overlay.redirect", "/x");
         t.File("f", "x").Xattr("security.capability", std::string("\x01\x00\x00\x02", 4));
       },
       false,
       [](UnpackerTest&, const std::string& l, const std::string&) {
         char buf[64];
         EXPECT_LT(lgetxattr((l + "/d").c_str(), "trusted.overlay.opaque", buf, sizeof buf), 0);
         EXPECT_LT(lgetxattr((l + "/d").c_str(), "user.overlay.redirect", buf, sizeof buf), 0);
         EXPECT_LT(lgetxattr((l + "/f").c_str(), "security.capability", buf, sizeof buf), 0);
       }},
  };

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(sys::RemoveTree(layer_));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    TarBuilder tar;
    c.build(tar, victim_);
    auto stats = Unpack(tar);
    if (c.refused) {
      EXPECT_FALSE(stats) << c.name << " was accepted";
      if (!stats) {
        EXPECT_TRUE(stats.error().code() == Code::kInvalidArgument ||
                    stats.error().code() == Code::kResourceExhausted)
            << stats.error().ToString();
      }
    } else {
      ASSERT_TRUE(stats) << stats.error().ToString();
      if (c.check) c.check(*this, layer_, victim_);
    }
    EXPECT_TRUE(VictimUnchanged()) << c.name << " changed the outside tree";
  }
}

TEST_F(UnpackerTest, RegularLayerWithEverything) {
  TarBuilder tar;
  tar.Dir("bin", 0755)
      .File("bin/tool", "#!/bin/sh\n", 04755, 0, 0)
      .Dir("home/app", 0700, 1000, 1000)
      .File("home/app/.profile", "export A=1\n", 0600, 1000, 1000)
      .Symlink("bin/sh", "tool")
      .Hardlink("bin/tool2", "bin/tool")
      .Fifo("run/fifo")
      .File("big-uid", "x", 0644, 200000, 200000)
      .File("user-xattr", "x")
      .Xattr("user.comment", "hello")
      .Dir("tmp", 01777);
  auto stats = Unpack(tar, Compression::kGzip);
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(stats->compression, Compression::kGzip);
  EXPECT_EQ(stats->entries, 10u);

  struct stat st {};
  ASSERT_EQ(lstat(L("bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);  // setuid kept: sandboxes run with no_new_privs
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(lstat(L("tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(lstat(L("bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(lstat(L("run/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  char buf[32];
  ssize_t n = getxattr(L("user-xattr").c_str(), "user.comment", buf, sizeof buf);
  if (n >= 0) {  // some filesystems lack user xattrs
    EXPECT_EQ(std::string(buf, n), "hello");
  }
  if (IsRoot()) {
    ASSERT_EQ(lstat(L("home/app/.profile").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1001000u);
    EXPECT_EQ(st.st_gid, 1001000u);
    ASSERT_EQ(lstat(L("bin/sh").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000000u);
    ASSERT_EQ(lstat(L("big-uid").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000000u + 65534u);  // beyond the range: the overflow id
    ASSERT_EQ(lstat(layer_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000000u);
    ASSERT_EQ(lstat(L("run").c_str(), &st), 0);  // implied parent: the sandbox's root owns it
    EXPECT_EQ(st.st_uid, 1000000u);
  }
  ASSERT_EQ(lstat(L("bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1700000000);
}

TEST_F(UnpackerTest, WhiteoutsInOverlayForm) {
  TarBuilder tar;
  tar.Dir("etc").File("etc/.wh.hosts", "").Dir("var/cache").File("var/cache/.wh..wh..opq", "");
  tar.File(".wh..wh.plnk", "");  // aufs bookkeeping: ignored
  auto stats = Unpack(tar);
  ASSERT_TRUE(stats) << stats.error().ToString();
  struct stat st {};
  ASSERT_EQ(lstat(L("etc/hosts").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 0u);
  EXPECT_EQ(minor(st.st_rdev), 0u);
  EXPECT_FALSE(Exists(L(".wh..wh.plnk")));
  EXPECT_FALSE(Exists(L("etc/.wh.hosts")));
  char value[4];
  ssize_t n = getxattr(L("var/cache").c_str(), Options().opaque_xattr.c_str(), value, sizeof value);
  ASSERT_EQ(n, 1) << "opaque xattr missing: " << strerror(errno);
  EXPECT_EQ(value[0], 'y');
}

TEST_F(UnpackerTest, LaterEntriesReplaceEarlierOnes) {
  TarBuilder tar;
  tar.Dir("x")
      .File("x/inner", "1")
      .File("x", "now a file")
      .File("y", "1")
      .Dir("y")
      .File("y/z", "2");
  auto stats = Unpack(tar);
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(Read(L("x")), "now a file");
  EXPECT_EQ(Read(L("y/z")), "2");
}

TEST_F(UnpackerTest, CompressionsAndDiffId) {
  TarBuilder tar;
  tar.File("a", std::string(100000, 'a')).File("b", "b");
  std::string raw = tar.Finish(Compression::kNone, std::string(2048, '\0'));
  std::string diff_id = Sha256Digest(raw);
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(std::string(CompressionName(c)));
    ASSERT_TRUE(sys::RemoveTree(layer_));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    UnpackOptions o = Options();
    o.expected_diff_id = diff_id;
    auto stats = Unpack(testing::Compress(raw, c), o);
    ASSERT_TRUE(stats) << stats.error().ToString();
    EXPECT_EQ(stats->compression, c);
    // The diff_id covers the data after the end-of-archive blocks too.
    EXPECT_EQ(stats->diff_id, diff_id);
    EXPECT_EQ(stats->decoded_bytes, raw.size());
    EXPECT_EQ(Read(L("a")), std::string(100000, 'a'));
  }
  // Multi-member gzip (pigz, concatenated streams) is one stream.
  ASSERT_TRUE(sys::RemoveTree(layer_));
  ASSERT_TRUE(sys::MakeDirs(layer_));
  std::string split = testing::Compress(raw.substr(0, 1000), Compression::kGzip) +
                      testing::Compress(raw.substr(1000), Compression::kGzip);
  auto stats = Unpack(split, Options());
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(stats->diff_id, diff_id);
}

TEST_F(UnpackerTest, WrongDiffIdIsDataLoss) {
  TarBuilder tar;
  tar.File("a", "a");
  UnpackOptions o = Options();
  o.expected_diff_id = Sha256Digest("something else");
  auto stats = Unpack(tar.Finish(Compression::kGzip), o);
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code(), Code::kDataLoss);
}

TEST_F(UnpackerTest, CorruptAndTruncatedLayers) {
  TarBuilder tar;
  tar.File("a", std::string(300000, 'q')).File("b", RandomHex(4096));
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(std::string(CompressionName(c)));
    std::string blob = tar.Finish(c);
    ASSERT_TRUE(sys::RemoveTree(layer_));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    auto truncated = Unpack(blob.substr(0, blob.size() / 2), Options());
    ASSERT_FALSE(truncated);
    EXPECT_EQ(truncated.error().code(), Code::kDataLoss) << truncated.error().ToString();

    std::string corrupt = blob;
    for (size_t i = corrupt.size() / 3; i < corrupt.size() / 3 + 64; ++i) corrupt[i] ^= 0x5a;
    ASSERT_TRUE(sys::RemoveTree(layer_));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    // zstd frames carry no checksum by default: the diff_id (always known in a pull) catches it.
    UnpackOptions o = Options();
    o.expected_diff_id = Sha256Digest(tar.Finish(Compression::kNone));
    auto bad = Unpack(corrupt, o);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Code::kDataLoss) << bad.error().ToString();
  }
  // A plain tar cut in the middle of an entry.
  std::string plain = tar.Finish(Compression::kNone);
  ASSERT_TRUE(sys::RemoveTree(layer_));
  ASSERT_TRUE(sys::MakeDirs(layer_));
  auto cut = Unpack(plain.substr(0, 1000), Options());
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code(), Code::kDataLoss);
}

TEST_F(UnpackerTest, DecompressionBombsAreBoundedOnTheDecodedSide) {
  TarBuilder tar;
  tar.Zeros("bomb", 48u << 20);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(std::string(CompressionName(c)));
    std::string blob = tar.Finish(c);
    ASSERT_LT(blob.size(), 1u << 20);  // a small download that expands 48x or more
    ASSERT_TRUE(sys::RemoveTree(layer_));
    ASSERT_TRUE(sys::MakeDirs(layer_));
    UnpackOptions o = Options();
    o.limits.max_bytes = 8u << 20;
    auto stats = Unpack(blob, o);
    ASSERT_FALSE(stats);
    EXPECT_EQ(stats.error().code(), Code::kResourceExhausted) << stats.error().ToString();
    EXPECT_EQ(stats.error().reason(), "SBX_IMAGE_TOO_LARGE");
    // Writing stopped near the limit.
    struct stat st {};
    if (lstat(L("bomb").c_str(), &st) == 0) {
      EXPECT_LE(st.st_size, 9 << 20);
    }
  }
  // The budget shared by an image's layers.
  std::atomic<int64_t> budget(4 << 20);
  UnpackOptions o = Options();
  o.limits.image_budget = &budget;
  ASSERT_TRUE(sys::RemoveTree(layer_));
  ASSERT_TRUE(sys::MakeDirs(layer_));
  auto shared = Unpack(tar.Finish(Compression::kGzip), o);
  ASSERT_FALSE(shared);
  EXPECT_EQ(shared.error().code(), Code::kResourceExhausted);
}

TEST_F(UnpackerTest, EntryCountIsBounded) {
  TarBuilder tar;
  for (int i = 0; i < 50; ++i) tar.File("f" + std::to_string(i), "");
  UnpackOptions o = Options();
  o.max_entries = 20;
  auto stats = Unpack(tar.Finish(), o);
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code(), Code::kResourceExhausted);
}

TEST_F(UnpackerTest, NotATar) {
  auto stats = Unpack(std::string(4096, 'z'), Options());
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code(), Code::kDataLoss);
  auto empty = Unpack(std::string(), Options());
  // An empty stream is an empty layer? libarchive calls it an error; either way nothing escapes.
  (void)empty;
}

}  // namespace
}  // namespace sbx::image
