// File: main.h
//
// sbxd's command line: flags, configuration file, logging, signals. Kept out of cmd/ so it is
// testable and cmd/sbxd/main.cc stays one line.

#pragma once

namespace sbx::daemon {

int Main(int argc, char** argv);

}  // namespace sbx::daemon
