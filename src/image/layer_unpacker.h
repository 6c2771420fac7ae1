// File: layer_unpacker.h
//
// Unpacks one image layer (a tar stream, gzip/zstd/plain) into an empty directory in overlayfs
// form, so that a stack of unpacked layers mounted as overlayfs lower directories shows the
// image:
//   * ".wh.<name>" becomes a whiteout (character device 0/0) named <name>;
//   * ".wh..wh..opq" sets the opaque xattr on its directory; other ".wh..wh.*" are ignored;
//   * regular files, directories, symlinks, hardlinks and FIFOs are created with their mode
//     (setuid/setgid/sticky kept: sandboxes run with no_new_privs and ids are shifted), mtime and
//     "user." xattrs; ownership is shifted into the sandbox's id range;
//   * device nodes and sockets are skipped.
//
// SECURITY: the layer is hostile. Every entry is created through descriptors relative to the
// layer root (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS for parents, *at() calls on the
// final component with no following of symlinks), so absolute paths, "..", symlinks and
// hardlinks cannot reach outside the directory: a symlink that earlier entries created is
// resolved as if the layer root were "/", the way Docker and containerd unpack. Entry names that
// climb above the root, whiteouts of "." or "..", hardlinks to directories or to missing files,
// paths longer than PATH_MAX or with components longer than NAME_MAX are refused (the whole layer
// fails). Expansion is bounded on the decoded stream (see layer_stream.h) and in entry count.
// xattrs in the "trusted." and "security." namespaces and "user.overlay." are dropped: only this
// code decides what overlayfs sees.
//
// On failure the destination is left in an unspecified state; the caller unpacks into a
// temporary directory and removes it (the Store does).

#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "src/base/result.h"
#include "src/image/layer_stream.h"

namespace sbx::image {

struct UnpackOptions {
  bool map_ids = true;  // chown entries to host_uid + uid (needs CAP_CHOWN)
  uint32_t host_uid = 1000000;
  uint32_t host_gid = 1000000;
  uint32_t id_range = 65536;  // ids at or above map to host + 65534 (the overflow id)
  StreamLimits limits;
  uint64_t max_entries = 1u << 20;
  std::string expected_diff_id;  // verified against the decoded stream when set
  std::string opaque_xattr = "trusted.overlay.opaque";
  // Called with the number of compressed bytes consumed so far.
  std::function<void(uint64_t)> progress;
};

struct UnpackStats {
  std::string diff_id;  // sha256 of the decoded tar stream
  Compression compression = Compression::kNone;
  uint64_t decoded_bytes = 0;
  uint64_t entries = 0;
  uint64_t file_bytes = 0;  // sum of regular file sizes
  uint64_t skipped = 0;     // device nodes, sockets, unsupported xattrs
};

// Unpacks the layer read from `blob_fd` (from its current offset) into `dest_dir`, which must
// exist and be empty.
Result<UnpackStats> UnpackLayer(int blob_fd, const std::string& dest_dir,
                                const UnpackOptions& options);

}  // namespace sbx::image
