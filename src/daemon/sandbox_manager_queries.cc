// The read side of SandboxManager: lookups, listing, waiting for a state, the capacity report;
// and Purge, which is a listing followed by stops.

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/daemon/sandbox_manager.h"

namespace sbx::daemon {

Error SandboxNotFound(const std::string& id) {
  return Error::NotFound("sandbox " + Quote(id) + " not found")
      .WithReason("CWSANDBOX_SANDBOX_NOT_FOUND")
      .WithMetadata("sandbox_id", id);
}

Result<SandboxRecord> SandboxManager::Get(const std::string& tenant, const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.record.tenant != tenant) return SandboxNotFound(id);
  return it->second.record;
}

Result<SandboxUsage> SandboxManager::Usage(const std::string& tenant, const std::string& id) {
  SandboxRecord r;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.record.tenant != tenant) return SandboxNotFound(id);
    r = it->second.record;
  }
  if (r.state != State::kRunning) {
    return Error::FailedPrecondition("sandbox " + Quote(id) + " is " +
                                     std::string(StateName(r.state)) +
                                     "; only a running sandbox's usage can be read")
        .WithReason("CWSANDBOX_SANDBOX_NOT_RUNNING")
        .WithMetadata("sandbox_id", id);
  }
  SBX_ASSIGN_OR_RETURN(runtime::CgroupStats stats, runtime_->Stats(id));
  SandboxUsage usage;
  usage.read_ns = WallNanos();
  usage.cpu_usage_ns = stats.cpu_usage_ns;
  usage.cpu_millicores = cpu_rates_.Millicores(id, stats.cpu_usage_ns, usage.read_ns, r.start_ns);
  usage.memory_bytes = stats.memory_bytes;
  usage.memory_limit_bytes = r.memory_limit_bytes;
  usage.pids = stats.pids;
  // A layer that cannot be looked at (the sandbox ending meanwhile) leaves its numbers at 0; the
  // cgroup's are still worth reporting.
  if (auto disk = runtime_->WritableLayerUsage(SandboxOf(r))) {
    usage.disk_used_bytes = disk->used_bytes;
    usage.disk_total_bytes = disk->total_bytes;
  }
  return usage;
}

Result<ListResult> SandboxManager::List(const std::string& tenant, const ListFilter& filter) {
  std::lock_guard lock(mu_);
  std::vector<const SandboxRecord*> records;
  for (const auto& [id, entry] : entries_) {
    if (entry.record.tenant == tenant) records.push_back(&entry.record);
  }
  return ListPage(std::move(records), filter);
}

Result<PurgeResult> SandboxManager::Purge(const std::string& tenant,
                                          const std::vector<std::string>& tags, bool purge_all,
                                          bool dry_run) {
  if (tags.empty() && !purge_all) {
    return Error::InvalidArgument("purge needs tags, or purge_all to stop every sandbox");
  }
  ListFilter filter;
  filter.tags = tags;
  filter.page_size = kMaxPageSize;
  std::vector<std::string> ids;
  while (true) {
    SBX_ASSIGN_OR_RETURN(ListResult page, List(tenant, filter));
    for (const auto& r : page.sandboxes) {
      if (r.deleted_ns == 0) ids.push_back(r.id);
    }
    if (page.next_page_token.empty()) break;
    filter.page_token = page.next_page_token;
  }
  PurgeResult result;
  for (const auto& id : ids) {
    if (dry_run || Stop(tenant, id, 0)) {
      ++result.count;
    } else {
      result.failed.push_back(id);
    }
  }
  return result;
}

Result<SandboxRecord> SandboxManager::WaitFor(const std::string& tenant, const std::string& id,
                                              int64_t deadline_ms,
                                              const std::function<bool(State)>& done) {
  std::unique_lock lock(mu_);
  while (true) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.record.tenant != tenant) return SandboxNotFound(id);
    if (done(it->second.record.state) || stopping_) return it->second.record;
    int timeout = PollTimeout(deadline_ms);
    if (timeout == 0) return it->second.record;
    changed_.wait_for(lock, std::chrono::milliseconds(timeout));
  }
}

Result<SandboxRecord> SandboxManager::WaitSettled(const std::string& tenant, const std::string& id,
                                                  int64_t deadline_ms) {
  return WaitFor(tenant, id, deadline_ms,
                 [](State s) { return s != State::kPending && s != State::kCreating; });
}

Result<SandboxRecord> SandboxManager::WaitEnded(const std::string& tenant, const std::string& id,
                                                int64_t deadline_ms) {
  return WaitFor(tenant, id, deadline_ms, IsTerminal);
}

Result<std::string> SandboxManager::AgentSocket(const std::string& tenant, const std::string& id,
                                                int64_t deadline_ms, Access access) {
  SBX_ASSIGN_OR_RETURN(SandboxRecord r, WaitSettled(tenant, id, deadline_ms));
  if (r.state == State::kPending || r.state == State::kCreating) {
    return Error::DeadlineExceeded("sandbox " + id + " is still " +
                                   std::string(StateName(r.state)));
  }
  if (r.state == State::kRunning) return r.socket_path;
  bool ended = IsTerminal(r.state);
  if (access == Access::kReadFiles && ended && r.files_until_ns != 0 && r.deleted_ns == 0) {
    return r.socket_path;
  }
  std::string why = "sandbox " + id + " is " + std::string(StateName(r.state)) +
                    (r.reason.empty() ? "" : " (" + r.StateReason() + ")");
  if (access == Access::kReadFiles && ended) {
    if (r.deleted_ns != 0) {
      why += "; its files went when it was deleted";
    } else if (config_.files_retention_seconds == 0) {
      why += "; this node keeps no files of ended sandboxes (files_retention_seconds is 0)";
    } else if (int64_t until =
                   r.end_ns + static_cast<int64_t>(config_.files_retention_seconds) * 1000000000;
               WallNanos() >= until) {
      why += "; its files were kept until " + FormatUtc(until) + " (files_retention_seconds)";
    } else {
      why += "; its files could not be kept";
    }
  } else if (ended && r.files_until_ns != 0) {
    why += "; its files can still be read until " + FormatUtc(r.files_until_ns);
  }
  return Error::FailedPrecondition(why)
      .WithReason("CWSANDBOX_SANDBOX_NOT_RUNNING")
      .WithMetadata("sandbox_id", id)
      .WithMetadata("state", std::string(StateName(r.state)));
}

Result<std::pair<std::string, uint64_t>> SandboxManager::SavedLogs(const std::string& id) {
  return store_->GetLogs(id);
}

void SandboxManager::DropWarm(const std::string& digest) { warm_.DropDigest(digest); }

Capacity SandboxManager::GetCapacity() {
  Capacity c;
  c.warm = warm_.ReadyByImage();
  std::lock_guard lock(mu_);
  AdmissionUsage usage = admission_.usage();
  c.cpu_millis = node_.cpu_millis;
  c.memory_bytes = node_.memory_bytes;
  c.allocated_cpu_millis = usage.cpu_millis;
  c.allocated_memory_bytes = usage.memory_bytes;
  c.disk_bytes = node_.disk_bytes;
  c.allocated_disk_bytes = usage.disk_bytes;
  c.pending = usage.queued;
  for (const auto& [id, e] : entries_) {
    if (e.record.state == State::kRunning) ++c.running;
  }
  return c;
}

}  // namespace sbx::daemon
