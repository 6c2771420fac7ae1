#include "src/daemon/warm_pool.h"

#include <algorithm>

namespace sbx::daemon {

uint64_t ShmBytesFor(uint64_t memory_limit_bytes) {
  return std::min<uint64_t>(64ull << 20, memory_limit_bytes / 2);
}

bool WarmEligible(const CreateRequest& request, uint64_t memory_limit_bytes,
                  uint64_t default_memory_bytes) {
  const net::NetworkRequest& network = request.network;
  bool default_network = network.mode == net::NetworkMode::kPublic && network.egress.empty() &&
                         network.services.empty();
  // A warm sandbox is made with a writable root and the default capabilities.
  return default_network && request.files.empty() && !request.read_only_root &&
         request.drop_capabilities.empty() &&
         ShmBytesFor(memory_limit_bytes) == ShmBytesFor(default_memory_bytes);
}

WarmPool::WarmPool(int per_image, int max_images, int64_t idle_ns)
    : per_image_(std::max(per_image, 0)),
      max_images_(static_cast<size_t>(std::max(max_images, 1))),
      idle_ns_(idle_ns) {}

std::vector<WarmSandbox> WarmPool::Drop(const std::string& image) {
  auto it = images_.find(image);
  if (it == images_.end()) return {};
  std::vector<WarmSandbox> out(std::make_move_iterator(it->second.ready.begin()),
                               std::make_move_iterator(it->second.ready.end()));
  images_.erase(it);
  return out;
}

std::vector<WarmSandbox> WarmPool::Use(const std::string& image, const std::string& digest,
                                       int64_t now) {
  if (!enabled()) return {};
  Image& entry = images_[image];
  entry.last_use = now;
  entry.digest = digest;
  entry.failed = false;
  std::vector<WarmSandbox> evicted;
  while (images_.size() > max_images_) {
    auto oldest = std::min_element(
        images_.begin(), images_.end(),
        [](const auto& a, const auto& b) { return a.second.last_use < b.second.last_use; });
    for (auto& sb : Drop(oldest->first)) evicted.push_back(std::move(sb));
  }
  return evicted;
}

std::optional<WarmSandbox> WarmPool::Take(const std::string& image) {
  auto it = images_.find(image);
  if (it == images_.end() || it->second.ready.empty()) return std::nullopt;
  WarmSandbox sb = std::move(it->second.ready.front());
  it->second.ready.pop_front();
  return sb;
}

int WarmPool::Missing(const Image& image) const {
  if (image.failed) return 0;
  return per_image_ - static_cast<int>(image.ready.size()) - image.filling;
}

bool WarmPool::NeedsFill() const {
  return std::any_of(images_.begin(), images_.end(),
                     [this](const auto& entry) { return Missing(entry.second) > 0; });
}

std::optional<std::string> WarmPool::NextFill() {
  const std::string* best = nullptr;
  int best_missing = 0;
  int64_t best_use = 0;
  for (const auto& [name, entry] : images_) {
    int missing = Missing(entry);
    if (missing <= 0) continue;
    if (!best || missing > best_missing || (missing == best_missing && entry.last_use > best_use)) {
      best = &name;
      best_missing = missing;
      best_use = entry.last_use;
    }
  }
  if (!best) return std::nullopt;
  ++images_[*best].filling;
  return *best;
}

std::optional<WarmSandbox> WarmPool::Filled(const std::string& image,
                                            std::optional<WarmSandbox> made) {
  auto it = images_.find(image);
  if (it == images_.end()) return made;  // no longer wanted
  Image& entry = it->second;
  entry.filling = std::max(entry.filling - 1, 0);
  if (!made) {
    entry.failed = true;
    return std::nullopt;
  }
  if (static_cast<int>(entry.ready.size()) >= per_image_) return made;
  entry.digest = made->digest;
  entry.ready.push_back(std::move(*made));
  return std::nullopt;
}

std::vector<WarmSandbox> WarmPool::Expire(int64_t now) {
  std::vector<std::string> idle;
  for (const auto& [name, entry] : images_) {
    if (now - entry.last_use >= idle_ns_) idle.push_back(name);
  }
  std::vector<WarmSandbox> out;
  for (const auto& name : idle) {
    for (auto& sb : Drop(name)) out.push_back(std::move(sb));
  }
  return out;
}

std::vector<WarmSandbox> WarmPool::DropDigest(const std::string& digest) {
  std::vector<std::string> images;
  for (const auto& [name, entry] : images_) {
    if (entry.digest == digest ||
        std::any_of(entry.ready.begin(), entry.ready.end(),
                    [&digest](const WarmSandbox& sb) { return sb.digest == digest; })) {
      images.push_back(name);
    }
  }
  std::vector<WarmSandbox> out;
  for (const auto& name : images) {
    for (auto& sb : Drop(name)) out.push_back(std::move(sb));
  }
  return out;
}

std::vector<WarmSandbox> WarmPool::TakeAll() {
  std::vector<WarmSandbox> out;
  for (auto& [name, entry] : images_) {
    for (auto& sb : entry.ready) out.push_back(std::move(sb));
    entry.ready.clear();
  }
  return out;
}

size_t WarmPool::ready() const {
  size_t n = 0;
  for (const auto& [name, entry] : images_) n += entry.ready.size();
  return n;
}

std::map<std::string, int> WarmPool::ReadyByImage() const {
  std::map<std::string, int> out;
  for (const auto& [name, entry] : images_) out[name] = static_cast<int>(entry.ready.size());
  return out;
}

}  // namespace sbx::daemon
