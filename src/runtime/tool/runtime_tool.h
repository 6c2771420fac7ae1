// File: runtime_tool.h
//
// The sbx-runtime command line: the runtime usable and testable without the daemon.
//   sbx-runtime create -b BUNDLE      create the sandbox described by BUNDLE/spec.json
//   sbx-runtime exec -b BUNDLE [-t] [-i] -- CMD...
//   sbx-runtime stop -b BUNDLE [--grace S]
//   sbx-runtime run --rootfs DIR -- CMD...   one-shot sandbox from a directory

#pragma once

namespace sbx::runtime {

int RunTool(int argc, char** argv);

}  // namespace sbx::runtime
