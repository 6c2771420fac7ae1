// sbx-testpayload: a static probe that tests run inside sandboxes. Each subcommand does one thing
// and reports through its exit code and output, so a test can check the kernel's answer to a
// hostile action directly rather than through a shell.
//
//   try <syscall>     prints "ok" or the errno name; exit 0 if the call succeeded
//   memhog <MiB>      allocates and touches memory
//   forkbomb          forks until fork fails; prints "fork failed: <errno>" and exits 0
//   cpuhog <ms>       spins for a wall-clock duration, prints CPU time used in ms
//   fill <path>       writes zeros until the write fails; prints the errno and bytes written
//   fds               lists open descriptors with their targets
//   output <bytes>    writes that many bytes of a repeating pattern to stdout
//   i386              makes a syscall through the i386 ABI (int 0x80)
//   x32               makes a syscall through the x32 ABI
//   open <path>       opens a file for reading and writing; prints "ok" or the errno name
//   inodes <dir>...   compares readdir's d_ino with lstat's st_ino for every entry of each
//                     directory but mount points; prints each mismatch and "checked N entries"
//   inotify-hold      creates inotify instances until the kernel refuses one, prints
//                     "held N <errno>", and keeps them until stdin closes

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int Report(long rc) {
  if (rc >= 0) {
    printf("ok\n");
    return 0;
  }
  printf("%s\n", strerrorname_np(errno));
  return 1;
}

int Try(const std::string& what) {
  if (what == "mount") return Report(mount("none", "/tmp", "tmpfs", 0, nullptr));
  if (what == "unshare-user") return Report(unshare(CLONE_NEWUSER));
  if (what == "unshare-mount") return Report(unshare(CLONE_NEWNS));
  if (what == "unshare-net") return Report(unshare(CLONE_NEWNET));
  if (what == "clone-newuser") {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return Report(pid);
  }
  if (what == "keyctl") return Report(syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3, 0));
  if (what == "bpf") return Report(syscall(SYS_bpf, 0, nullptr, 0));
  if (what == "perf_event_open") return Report(syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0));
  if (what == "userfaultfd") return Report(syscall(SYS_userfaultfd, 0));
  if (what == "io_uring_setup") {
    io_uring_params params{};
    return Report(syscall(SYS_io_uring_setup, 1, &params));
  }
  if (what == "setns") return Report(syscall(SYS_setns, 0, 0));
  if (what == "pivot_root") return Report(syscall(SYS_pivot_root, "/", "/"));
  if (what == "sethostname") return Report(sethostname("x", 1));
  if (what == "af_packet") return Report(socket(AF_PACKET, SOCK_RAW, 0));
  if (what == "af_alg") return Report(socket(AF_ALG, SOCK_SEQPACKET, 0));
  if (what == "af_inet") return Report(socket(AF_INET, SOCK_STREAM, 0));
  if (what == "chroot") return Report(chroot("/"));
  if (what == "reboot") return Report(syscall(SYS_reboot, 0, 0, 0, nullptr));
  if (what == "clone3") return Report(syscall(SYS_clone3, nullptr, 0));
  if (what == "inotify") return Report(inotify_init1(IN_CLOEXEC));
  fprintf(stderr, "unknown syscall probe %s\n", what.c_str());
  return 2;
}

int MemHog(long mib) {
  std::vector<char*> blocks;
  for (long i = 0; i < mib; ++i) {
    char* block = static_cast<char*>(malloc(1 << 20));
    if (block == nullptr) {
      printf("malloc failed at %ld MiB\n", i);
      return 1;
    }
    memset(block, 1, 1 << 20);
    blocks.push_back(block);
  }
  printf("allocated %ld MiB\n", mib);
  return 0;
}

int ForkBomb() {
  int children = 0;
  while (true) {
    pid_t pid = fork();
    if (pid < 0) {
      printf("fork failed after %d children: %s\n", children, strerrorname_np(errno));
      fflush(stdout);
      kill(0, SIGKILL);
      return 0;
    }
    if (pid == 0) {
      pause();
      _exit(0);
    }
    ++children;
  }
}

int64_t Millis(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int CpuHog(long ms) {
  int64_t end = Millis(CLOCK_MONOTONIC) + ms;
  volatile uint64_t x = 0;
  while (Millis(CLOCK_MONOTONIC) < end) {
    for (int i = 0; i < 100000; ++i) x = x + static_cast<uint64_t>(i);
  }
  printf("%lld\n", static_cast<long long>(Millis(CLOCK_PROCESS_CPUTIME_ID)));
  return 0;
}

int Fill(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Report(-1);
  static char buf[1 << 20];
  long long written = 0;
  while (true) {
    ssize_t n = write(fd, buf, sizeof buf);
    if (n < 0) {
      printf("%s after %lld bytes\n", strerrorname_np(errno), written);
      return 0;
    }
    written += n;
  }
}

int Fds() {
  for (int fd = 0; fd < 1024; ++fd) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    char link[64];
    char target[512] = "?";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n >= 0) target[n] = '\0';
    printf("%d %s\n", fd, target);
  }
  return 0;
}

int Output(long long bytes) {
  static char buf[65536];
  for (size_t i = 0; i < sizeof buf; ++i) buf[i] = static_cast<char>('a' + i % 26);
  while (bytes > 0) {
    size_t n = bytes < static_cast<long long>(sizeof buf) ? static_cast<size_t>(bytes) : sizeof buf;
    ssize_t w = write(1, buf, n);
    if (w <= 0) return 1;
    bytes -= w;
  }
  return 0;
}

int I386() {
  long rc;
  // getpid through the 32-bit entry point (i386 syscall 20).
  asm volatile("int $0x80" : "=a"(rc) : "a"(20) : "memory");
  printf("%ld\n", rc);
  return 0;
}

int X32() {
  long rc = syscall(0x40000000 | SYS_getpid);
  printf("%ld\n", rc);
  return 0;
}

int Inodes(int argc, char** argv) {
  long checked = 0;
  int mismatches = 0;
  for (int i = 0; i < argc; ++i) {
    DIR* dir = opendir(argv[i]);
    if (dir == nullptr) {
      printf("opendir %s: %s\n", argv[i], strerrorname_np(errno));
      return 1;
    }
    while (dirent* e = readdir(dir)) {
      if (strcmp(e->d_name, "..") == 0) continue;
      struct statx st {};
      if (statx(dirfd(dir), e->d_name, AT_SYMLINK_NOFOLLOW, STATX_INO, &st) != 0) {
        printf("stat %s/%s: %s\n", argv[i], e->d_name, strerrorname_np(errno));
        ++mismatches;
        continue;
      }
      // A mount point's entry names the directory under the mount, as on any system.
      if ((st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
          (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) && strcmp(e->d_name, ".") != 0) {
        continue;
      }
      ++checked;
      if (st.stx_ino != e->d_ino) {
        printf("%s/%s d_ino %llu st_ino %llu\n", argv[i], e->d_name,
               static_cast<unsigned long long>(e->d_ino),
               static_cast<unsigned long long>(st.stx_ino));
        ++mismatches;
      }
    }
    closedir(dir);
  }
  printf("checked %ld entries\n", checked);
  return mismatches == 0 ? 0 : 1;
}

int InotifyHold() {
  long held = 0;
  while (inotify_init1(IN_CLOEXEC) >= 0) ++held;
  printf("held %ld %s\n", held, strerrorname_np(errno));
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: sbx-testpayload <command> [args]\n");
    return 2;
  }
  std::string cmd = argv[1];
  std::string arg = argc > 2 ? argv[2] : "";
  if (cmd == "try") return Try(arg);
  if (cmd == "memhog") return MemHog(atol(arg.c_str()));
  if (cmd == "forkbomb") return ForkBomb();
  if (cmd == "cpuhog") return CpuHog(atol(arg.c_str()));
  if (cmd == "fill") return Fill(arg.c_str());
  if (cmd == "fds") return Fds();
  if (cmd == "output") return Output(atoll(arg.c_str()));
  if (cmd == "i386") return I386();
  if (cmd == "x32") return X32();
  if (cmd == "open") return Report(open(arg.c_str(), O_RDWR | O_CLOEXEC));
  if (cmd == "inodes") return Inodes(argc - 2, argv + 2);
  if (cmd == "inotify-hold") return InotifyHold();
  fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
