// File: node_shape.h
//
// The node as its configuration describes it, resolved once: its capacity ("auto": all CPUs, 90%
// of the memory), the defaults a sandbox gets, and the options of each of the sandbox manager's
// rooms derived from them.

#pragma once

#include <cstdint>

#include "src/daemon/admission.h"
#include "src/daemon/config.h"
#include "src/daemon/spec_builder.h"
#include "src/daemon/warm_sandboxes.h"

namespace sbx::daemon {

struct NodeShape {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = 0;  // what disk requests may reserve
  uint64_t default_cpu_millis = 2000;
  uint64_t default_memory_bytes = 2ull << 30;
  uint64_t default_disk_bytes = 10ull << 30;   // a writable layer's size
  uint64_t default_disk_request_bytes = 0;     // what a sandbox reserves of disk_bytes
  uint64_t default_cpu_request_millis = 0;     // reserved without a CPU request
  uint64_t default_memory_request_bytes = 0;   // reserved without a memory request
  uint64_t memory_reserve_bytes = 1ull << 30;  // host memory creates never take
  uint64_t disk_reserve_bytes = 2ull << 30;    // never given to creates and pulls
};

NodeShape NodeShapeFromConfig(const Config& config);

// What a sandbox may use (limits, enforced by the kernel) and reserves of the node (requests,
// counted by admission).
struct SandboxResources {
  uint64_t cpu_limit_millis = 0;
  uint64_t memory_limit_bytes = 0;
  uint64_t cpu_request_millis = 0;
  uint64_t memory_request_bytes = 0;
};

// A limit not given is the request, else the node's default. A request not given is the node's
// default request (none by default), like a Burstable pod's: the sandbox reserves little and its
// limits still hold.
SandboxResources ResourcesFor(const CreateRequest& request, const NodeShape& node);

// RESOURCE_EXHAUSTED when less than the node's disk reserve is free on the filesystem of
// `state_dir`: creates stop there, before a sandbox's writes or a pull fill the host's disk.
Status CheckDiskReserve(const std::string& state_dir, const NodeShape& node);
AdmissionLimits AdmissionLimitsFromConfig(const Config& config, const NodeShape& node);
SpecDefaults SpecDefaultsFromConfig(const Config& config, const NodeShape& node);
WarmOptions WarmOptionsFromConfig(const Config& config, const NodeShape& node);

}  // namespace sbx::daemon
