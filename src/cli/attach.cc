#include "src/cli/attach.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "src/base/strings.h"
#include "src/cli/terminal.h"
#include "src/sys/process.h"

namespace sbx::cli {

bool WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int ReportCommandError(Context& ctx, const Error& error) {
  if (error.reason() == "CWSANDBOX_COMMAND_TIMEOUT") return ctx.Report(error, kExitTimeout);
  if (error.code() == Code::kNotFound && StartsWith(error.message(), "command ")) {
    return ctx.Report(error, kExitCommandNotFound);
  }
  if (error.code() == Code::kPermissionDenied && StartsWith(error.message(), "exec ")) {
    return ctx.Report(error, kExitCannotInvoke);
  }
  return ctx.Report(error, kExitSbxFailed);
}

int Attach(Context& ctx, const std::string& reference, ExecOptions exec,
           const AttachOptions& options) {
  Client* client = ctx.client();
  if (client == nullptr) return ctx.exit_code = kExitSbxFailed;
  auto resolved = ResolveId(*client, reference);
  if (!resolved) return ctx.Report(resolved.error(), kExitSbxFailed);
  const std::string& id = *resolved;
  if (options.tty) {
    exec.tty = true;
    auto size = GetWindowSize(STDIN_FILENO);
    if (!size) size = GetWindowSize(STDOUT_FILENO);
    if (size) {
      exec.rows = size->rows;
      exec.cols = size->cols;
    }
    if (!exec.env.count("TERM")) {
      const char* term = getenv("TERM");
      exec.env["TERM"] = term != nullptr && *term != '\0' ? term : "xterm";
    }
  }
  // Before the command starts, so a Ctrl-C from then on kills it instead of leaving it behind.
  auto signals = SignalWatcher::Watch({SIGINT, SIGTERM, SIGHUP, SIGWINCH});
  if (!signals) return ctx.Report(signals.error(), kExitSbxFailed);
  std::atomic<ExecSession*> running{nullptr};
  auto sink = [&running](int fd) {
    return [fd, &running](std::string_view data) {
      if (!WriteFully(fd, data)) {
        // Nobody reads our output any more (a closed pipe): stop the command.
        if (ExecSession* s = running.load()) s->Cancel();
      }
    };
  };
  auto started = client->StartExec(id, exec, {sink(STDOUT_FILENO), sink(STDERR_FILENO)});
  if (!started) return ReportCommandError(ctx, started.error());
  ExecSession& session = **started;
  running = &session;
  std::unique_ptr<RawMode> raw;
  if (options.tty && ctx.stdin_tty) {
    auto enabled = RawMode::Enable(STDIN_FILENO);
    if (enabled) raw = std::move(*enabled);
  }
  if (!options.forward_stdin) (void)session.CloseStdin();

  Waker waker;
  std::atomic<int> interrupted{0};
  std::thread pump([&] {
    bool stdin_open = options.forward_stdin;
    std::string buffer(64 << 10, '\0');
    pollfd fds[3] = {{waker.fd(), POLLIN, 0}, {(*signals)->fd(), POLLIN, 0}, {-1, POLLIN, 0}};
    while (true) {
      fds[2].fd = stdin_open ? STDIN_FILENO : -1;
      if (poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents != 0) return;
      if (fds[1].revents != 0) {
        while (int sig = (*signals)->Read()) {
          if (sig == SIGWINCH) {
            if (!options.tty) continue;
            if (auto size = GetWindowSize(STDIN_FILENO))
              (void)session.Resize(size->rows, size->cols);
          } else {
            interrupted = sig;
            session.Cancel();
          }
        }
      }
      if (stdin_open && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ssize_t n = read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n > 0) {
          if (!session.WriteStdin(std::string_view(buffer.data(), static_cast<size_t>(n)))) {
            stdin_open = false;
          }
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          stdin_open = false;
          (void)session.CloseStdin();
        }
      }
    }
  });
  auto code = session.Wait();
  running = nullptr;
  waker.Wake();
  pump.join();
  raw.reset();  // the terminal is back to normal before anything more is printed
  if (code) return ctx.exit_code = *code;
  if (int sig = interrupted.load(); sig != 0) {
    fprintf(stderr, "sbx: interrupted; the command was killed\n");
    return ctx.exit_code = sys::ShellExitCode(true, 0, sig);
  }
  return ReportCommandError(ctx, code.error());
}

}  // namespace sbx::cli
