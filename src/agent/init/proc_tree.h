// File: proc_tree.h
//
// Killing the process tree of an exec: its process group, its session, and every descendant
// still linked to it by parentage, found by scanning /proc. Repeated until a scan finds nothing,
// so processes forked during the kill are caught too. A process that double-forked away from
// the exec (reparented to PID 1 in a new session) is no longer part of the tree.

#pragma once

#include <sys/types.h>

#include <string>

namespace sbx::agent {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  char state = '?';
};

// Parses the content of /proc/<pid>/stat (the comm field may contain spaces and parentheses).
bool ParseProcStat(const std::string& text, ProcStat* out);

// Sends `sig` to the tree of `root` (pid, group and session `root`); returns how many distinct
// processes were signalled.
int KillTree(pid_t root, int sig, const std::string& proc = "/proc");

}  // namespace sbx::agent
