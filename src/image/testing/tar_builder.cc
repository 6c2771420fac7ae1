#include "src/image/testing/tar_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <cstring>

#include "src/base/check.h"

namespace sbx::image::testing {
namespace {

la_ssize_t Append(archive*, void* user, const void* buf, size_t len) {
  static_cast<std::string*>(user)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

}  // namespace

TarBuilder& TarBuilder::Add(Entry entry) {
  entries_.push_back(std::move(entry));
  return *this;
}

TarBuilder& TarBuilder::File(const std::string& path, const std::string& content, unsigned mode,
                             int64_t uid, int64_t gid) {
  Entry e;
  e.path = path;
  e.type = AE_IFREG;
  e.content = content;
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Zeros(const std::string& path, uint64_t size) {
  Entry e;
  e.path = path;
  e.type = AE_IFREG;
  e.zeros = size;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Dir(const std::string& path, unsigned mode, int64_t uid, int64_t gid) {
  Entry e;
  e.path = path;
  e.type = AE_IFDIR;
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Symlink(const std::string& path, const std::string& target) {
  Entry e;
  e.path = path;
  e.type = AE_IFLNK;
  e.link = target;
  e.mode = 0777;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Hardlink(const std::string& path, const std::string& target) {
  Entry e;
  e.path = path;
  e.type = AE_IFREG;
  e.link = target;
  e.hardlink = true;
  e.mode = 0777;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Fifo(const std::string& path) {
  Entry e;
  e.path = path;
  e.type = AE_IFIFO;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::CharDevice(const std::string& path, unsigned major, unsigned minor) {
  Entry e;
  e.path = path;
  e.type = AE_IFCHR;
  e.mode = 0666;
  e.rdev_major = major;
  e.rdev_minor = minor;
  return Add(std::move(e));
}

TarBuilder& TarBuilder::Xattr(const std::string& name, const std::string& value) {
  SBX_CHECK(!entries_.empty());
  entries_.back().xattrs.emplace_back(name, value);
  return *this;
}

std::string TarBuilder::Finish(Compression compression, const std::string& trailer) const {
  std::string out;
  archive* a = archive_write_new();
  SBX_CHECK(a != nullptr);
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  SBX_CHECK(archive_write_open(a, &out, nullptr, &Append, nullptr) == ARCHIVE_OK);
  for (const auto& e : entries_) {
    archive_entry* entry = archive_entry_new();
    archive_entry_copy_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.mode);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    if (e.type == AE_IFLNK) archive_entry_copy_symlink(entry, e.link.c_str());
    if (e.hardlink) archive_entry_copy_hardlink(entry, e.link.c_str());
    if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(entry, e.rdev_major);
      archive_entry_set_rdevminor(entry, e.rdev_minor);
    }
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    uint64_t size = e.type == AE_IFREG && !e.hardlink ? (e.zeros ? e.zeros : e.content.size()) : 0;
    archive_entry_set_size(entry, static_cast<la_int64_t>(size));
    SBX_CHECK(archive_write_header(a, entry) == ARCHIVE_OK);
    if (e.zeros) {
      std::string chunk(1u << 20, '\0');
      uint64_t left = e.zeros;
      while (left > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
        SBX_CHECK(archive_write_data(a, chunk.data(), n) == static_cast<la_ssize_t>(n));
        left -= n;
      }
    } else if (size > 0) {
      SBX_CHECK(archive_write_data(a, e.content.data(), e.content.size()) ==
                static_cast<la_ssize_t>(e.content.size()));
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  out += trailer;
  return Compress(out, compression);
}

std::string Compress(const std::string& data, Compression compression) {
  if (compression == Compression::kNone) return data;
  if (compression == Compression::kZstd) {
    std::string out(ZSTD_compressBound(data.size()), '\0');
    size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
    SBX_CHECK(!ZSTD_isError(n));
    out.resize(n);
    return out;
  }
  z_stream zs{};
  SBX_CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  // JUSTIFICATION: zlib's API takes unsigned byte pointers.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  SBX_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace sbx::image::testing
