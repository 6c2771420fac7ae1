#include "src/runtime/capabilities.h"

#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include <algorithm>
#include <memory>

#include "src/base/strings.h"

namespace sbx::runtime {

std::vector<int> DefaultCapabilities() {
  return {CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,
          CAP_SETGID, CAP_SETUID,       CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
          CAP_SETFCAP};
}

std::string CapabilityName(int cap) {
  char* name = cap_to_name(cap);
  if (name == nullptr) return "cap_" + std::to_string(cap);
  std::string out = name;
  cap_free(name);
  return out;
}

Result<int> ParseCapability(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("cap_", 0) != 0) lower = "cap_" + lower;
  cap_value_t value = 0;
  if (lower.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos ||
      cap_from_name(lower.c_str(), &value) != 0) {
    return Error::InvalidArgument("unknown capability " + Quote(name));
  }
  return static_cast<int>(value);
}

Result<uint64_t> DroppedCapabilityMask(const std::vector<std::string>& drop) {
  uint64_t mask = 0;
  for (const auto& name : drop) {
    if (name == "ALL") return ~uint64_t{0};
    SBX_ASSIGN_OR_RETURN(int cap, ParseCapability(name));
    if (cap < 0 || cap > 63)
      return Error::InvalidArgument("capability " + Quote(name) + " out of range");
    mask |= uint64_t{1} << cap;
  }
  return mask;
}

Status ApplyCapabilities(const std::vector<int>& keep) {
  int last = static_cast<int>(cap_max_bits()) - 1;
  for (int cap = 0; cap <= last; ++cap) {
    if (std::find(keep.begin(), keep.end(), cap) != keep.end()) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return Error::Errno("drop " + CapabilityName(cap) + " from the bounding set");
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return Error::Errno("clear ambient capabilities");
  }
  std::unique_ptr<_cap_struct, int (*)(void*)> caps(cap_init(), cap_free);
  if (!caps) return Error::Errno("cap_init");
  std::vector<cap_value_t> values(keep.begin(), keep.end());
  // SECURITY: the inheritable set stays empty (Docker's since CVE-2022-24769): a program's file
  // capabilities can then grant an unprivileged user nothing through it.
  for (cap_flag_t flag : {CAP_PERMITTED, CAP_EFFECTIVE}) {
    if (!values.empty() && cap_set_flag(caps.get(), flag, static_cast<int>(values.size()),
                                        values.data(), CAP_SET) != 0) {
      return Error::Errno("cap_set_flag");
    }
  }
  if (cap_set_proc(caps.get()) != 0) return Error::Errno("cap_set_proc");
  return Ok();
}

bool HasEffectiveCapability(int cap) {
  std::unique_ptr<_cap_struct, int (*)(void*)> caps(cap_get_proc(), cap_free);
  if (!caps) return false;
  cap_flag_value_t value = CAP_CLEAR;
  if (cap_get_flag(caps.get(), cap, CAP_EFFECTIVE, &value) != 0) return false;
  return value == CAP_SET;
}

}  // namespace sbx::runtime
