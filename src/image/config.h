// File: config.h
//
// The image configuration (the JSON blob a manifest's "config" names) and how it combines with a
// request into the process a sandbox runs, with Docker's rules:
//   * a request command replaces the image's Entrypoint AND Cmd (`docker run --entrypoint`);
//   * request args alone replace Cmd and keep the Entrypoint;
//   * environment: the image's, then the request's; the request wins on the same name, and a
//     request entry without "=" removes the variable; PATH gets Docker's default when unset;
//   * working directory: the request's, else WorkingDir, else "/";
//   * user: the request's, else User.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::image {

struct ImageConfig {
  std::vector<std::string> env, entrypoint, cmd, exposed_ports;
  std::string working_dir, user, os, architecture, variant;
};

// What the config says about the filesystem, besides ImageConfig.
struct ParsedConfig {
  ImageConfig config;
  std::vector<std::string> diff_ids;  // uncompressed layer digests, lowest first
  int64_t created_unix = 0;
};

// Parses an image config blob (OCI or Docker). Untrusted input: bounded and validated.
Result<ParsedConfig> ParseImageConfig(std::string_view json);

struct Overrides {
  std::optional<std::vector<std::string>> command;  // replaces Entrypoint (and Cmd)
  std::optional<std::vector<std::string>> args;     // replaces Cmd
  std::vector<std::string> env;                     // KEY=VALUE; "KEY" unsets
  std::string working_dir, user;
};

struct ProcessSpec {
  std::vector<std::string> argv, env;
  std::string cwd, user;
};

inline constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

ProcessSpec ResolveProcess(const ImageConfig& image, const Overrides& overrides);

// Parses an RFC 3339 timestamp ("2024-01-02T03:04:05.123456789Z", "...+02:00") to Unix seconds.
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace sbx::image
