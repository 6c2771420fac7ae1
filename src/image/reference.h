// File: reference.h
//
// Image references, parsed and normalised the way Docker does (distribution/reference):
//
//   "python:3.11"                 -> docker.io/library/python:3.11
//   "busybox"                     -> docker.io/library/busybox:latest
//   "ghcr.io/org/img@sha256:..."  -> ghcr.io/org/img@sha256:...
//   "localhost:5000/x/y:dev"      -> localhost:5000/x/y:dev
//
// Grammar: name = [domain "/"] path-component ("/" path-component)*, where the first component
// is a domain when it contains "." or ":", is "localhost", or has uppercase letters; path
// components are [a-z0-9]+ joined by ".", "_", "__" or runs of "-"; the whole name is at most
// 255 characters. tag = [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. digest = sha256:<64 lowercase hex>.
// "index.docker.io" is the same registry as "docker.io"; one-component names on docker.io live
// under "library/".
//
// A reference text comes from API callers: everything about it is validated, and a bad one is
// kInvalidArgument with a message naming what is wrong.

#pragma once

#include <string>
#include <string_view>

#include "src/base/result.h"

namespace sbx::image {

inline constexpr std::string_view kDockerHub = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "localhost:5000", "ghcr.io"
  std::string repository;  // "library/python"
  std::string tag;         // "3.11"; "latest" when neither a tag nor a digest was given
  std::string digest;      // "sha256:<64 hex>" or empty

  static Result<Reference> Parse(std::string_view text);

  // "docker.io/library/python:3.11", "ghcr.io/org/img:v1@sha256:...".
  std::string String() const;
  // "docker.io/library/python".
  std::string Name() const { return registry + "/" + repository; }
  // What a registry is asked for: the digest when there is one, else the tag.
  const std::string& TagOrDigest() const { return digest.empty() ? tag : digest; }

  bool operator==(const Reference&) const = default;
};

}  // namespace sbx::image
