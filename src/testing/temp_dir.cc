#include "src/testing/temp_dir.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "src/sys/fs.h"

namespace sbx::testing {

TempDir::TempDir(const std::string& prefix) {
  const char* base = getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    perror("mkdtemp");
    abort();
  }
  path_ = buf.data();
}

TempDir::~TempDir() { (void)sys::RemoveTree(path_); }

}  // namespace sbx::testing
