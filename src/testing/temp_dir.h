// File: temp_dir.h
//
// A temporary directory for tests, removed (without following symlinks or crossing mounts) when
// the object goes away.

#pragma once

#include <stdlib.h>

#include <string>

namespace sbx::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sbx-test");
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace sbx::testing
