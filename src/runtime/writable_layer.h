// File: writable_layer.h
//
// The writable layer of a sandbox lives on a filesystem of its own so that the kernel bounds it:
// a sparse ext4 image of the requested size on a loop device (ENOSPC at the quota, whatever the
// host filesystem is), or a size-limited tmpfs. Formatting an image costs tens of milliseconds,
// so images can be formatted ahead of time into a pool directory and taken from there.

#pragma once

#include <cstdint>
#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::runtime {

struct DiskFormat {
  uint64_t size_bytes = 0;
  uint64_t inodes = 0;  // 0: mkfs default
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
};

// The file name a pooled image of this format has (without the random suffix).
std::string PoolPrefix(const DiskFormat& format);

// Creates a sparse image at `path` and formats it ext4 (no journal: the layer is ephemeral).
// With a `template_dir`, the image is a copy of the allocated blocks of a template of the same
// format kept there (made once with mkfs): the few MiB of a fresh filesystem's metadata copy in
// about 2 ms, where mkfs takes tens of milliseconds. Every copy has the template's UUID, which
// nothing of sbx relies on.
Status FormatDiskImage(const std::string& path, const DiskFormat& format,
                       const std::string& template_dir = {});

// The template FormatDiskImage copies for `format` in `template_dir`.
std::string TemplatePath(const std::string& template_dir, const DiskFormat& format);

// Moves a pre-formatted image of `format` from `pool_dir` to `path`; false if none is there.
Result<bool> TakeFromPool(const std::string& pool_dir, const DiskFormat& format,
                          const std::string& path);

// Formats images into `pool_dir` until it holds `count` of `format`.
Status FillPool(const std::string& pool_dir, const DiskFormat& format, int count);

// Removes from the pool what no create of `format` can use: images and templates of other formats
// (the configured disk size or id range changed), and half-made images a crash left.
Status PrunePool(const std::string& pool_dir, const DiskFormat& format);

// The overlay's upper and work directories at the root of a writable layer `layer_dir` (a
// directory or a mount's descriptor), the upper one owned by the sandbox's root so that the
// merged root directory is. Existing ones are kept: a pooled layer has them made in advance, off
// the create path, where the first writes to a new filesystem cost milliseconds.
Status MakeOverlayDirs(int layer_dir, uint32_t root_uid, uint32_t root_gid);

struct LoopDevice {
  std::string path;  // /dev/loopN
  UniqueFd fd;       // holds the device until the filesystem is mounted
};

// Attaches `image_path` to a free loop device with autoclear: the device detaches by itself when
// the filesystem on it is unmounted and the descriptor closed.
Result<LoopDevice> AttachLoop(const std::string& image_path);

// The backing file of a loop device, or empty when it is detached.
std::string LoopBackingFile(const std::string& device);

}  // namespace sbx::runtime
