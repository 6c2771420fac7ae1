// sbx images: pull (with per-layer progress), list, remove and load the node's images.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "src/base/strings.h"
#include "src/base/unique_fd.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"
#include "src/cli/pull_progress.h"

namespace sbx::cli {

namespace {

void AddPull(CLI::App& images, Context& ctx) {
  struct Flags {
    std::string reference;
    std::string platform;
    bool quiet = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = images.add_subcommand("pull", "Pull an image into the node's store");
  cmd->footer(
      "With a progress bar per layer (plain lines when stdout is not a terminal). Registry\n"
      "mirrors and credentials are sbxd's.");
  cmd->add_option("IMAGE", flags->reference, "e.g. python:3.11, ghcr.io/org/img@sha256:...")
      ->required()
      ->type_name("");
  cmd->add_option("--platform", flags->platform, "e.g. linux/arm64 (default: the node's)")
      ->type_name("OS/ARCH");
  cmd->add_flag("-q,--quiet", flags->quiet, "print only the image's digest");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    // With JSON on stdout, the progress goes to stderr.
    bool json = flags->output == "json";
    PullProgress progress(json ? stderr : stdout, json ? ctx.stderr_tty : ctx.stdout_tty);
    auto image = client->PullImage(
        flags->reference,
        [&](const std::vector<LayerProgress>& layers) {
          if (!flags->quiet) progress.Update(layers);
        },
        flags->platform);
    if (!flags->quiet) progress.Finish();
    if (!image) return (void)ctx.Report(image.error());
    if (json) {
      printf("%s\n", ToJson(*image).dump(2).c_str());
    } else if (flags->quiet) {
      printf("%s\n", image->digest.c_str());
    } else {
      printf("pulled %s (%s, %s)\n", image->reference.c_str(), ShortDigest(image->digest).c_str(),
             FormatBytes(static_cast<uint64_t>(image->size_bytes)).c_str());
    }
    ctx.exit_code = kExitOk;
  });
}

void AddList(CLI::App& images, Context& ctx) {
  struct Flags {
    std::string output = "table";
    bool quiet = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = images.add_subcommand("ls", "List the images in the node's store");
  cmd->alias("list");
  cmd->add_option("-o,--output", flags->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT");
  cmd->add_flag("-q,--quiet", flags->quiet, "only the references, one a line");
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto images_listed = client->ListImages();
    if (!images_listed) return (void)ctx.Report(images_listed.error());
    if (flags->quiet) {
      for (const auto& i : *images_listed) printf("%s\n", i.reference.c_str());
    } else if (flags->output == "json") {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& i : *images_listed) out.push_back(ToJson(i));
      printf("%s\n", out.dump(2).c_str());
    } else {
      auto now = std::chrono::system_clock::now();
      std::vector<std::vector<std::string>> rows = {{"IMAGE", "DIGEST", "SIZE", "CREATED"}};
      for (const auto& i : *images_listed) {
        rows.push_back({i.reference, ShortDigest(i.digest),
                        FormatBytes(static_cast<uint64_t>(i.size_bytes)),
                        i.created_time ? FormatAge(*i.created_time, now) : "-"});
      }
      fputs(Table(rows).c_str(), stdout);
    }
    ctx.exit_code = kExitOk;
  });
}

void AddRemove(CLI::App& images, Context& ctx) {
  struct Flags {
    std::vector<std::string> references;
    bool force = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = images.add_subcommand("rm", "Remove images from the node's store");
  cmd->footer("The space of layers no other image uses is reclaimed.");
  cmd->add_option("IMAGE", flags->references, "the images")->required()->type_name("");
  cmd->add_flag("-f,--force", flags->force,
                "remove even if sandboxes use it (their layers stay until they end)");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    int code = kExitOk;
    bool json = flags->output == "json";
    nlohmann::ordered_json removed = nlohmann::ordered_json::array();
    for (const auto& ref : flags->references) {
      auto reclaimed = client->RemoveImage(ref, flags->force);
      if (!reclaimed) {
        code = ctx.Report(reclaimed.error());
        continue;
      }
      if (json) {
        removed.push_back({{"reference", ref}, {"reclaimed_bytes", *reclaimed}});
        continue;
      }
      printf("removed %s (%s reclaimed)\n", ref.c_str(),
             FormatBytes(static_cast<uint64_t>(*reclaimed)).c_str());
    }
    if (json) printf("%s\n", removed.dump(2).c_str());
    ctx.exit_code = code;
  });
}

void AddLoad(CLI::App& images, Context& ctx) {
  struct Flags {
    std::string input;
    std::string tag;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = images.add_subcommand("load", "Load an image archive into the node's store");
  cmd->footer("A 'docker save' archive or an OCI image layout tarball, from -i FILE or stdin.");
  cmd->add_option("-i,--input", flags->input, "the archive (default: stdin)")->type_name("FILE");
  cmd->add_option("--tag", flags->tag, "the reference to give an untagged image")
      ->type_name("IMAGE");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    UniqueFd file;
    int fd = STDIN_FILENO;
    if (!flags->input.empty() && flags->input != "-") {
      file.reset(open(flags->input.c_str(), O_RDONLY | O_CLOEXEC));
      if (!file) return (void)ctx.Report(Error::Errno("open " + Quote(flags->input)));
      fd = file.get();
    } else if (ctx.stdin_tty) {
      return (void)ctx.Usage("no archive: give -i FILE or pipe one to stdin", "images load");
    }
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto loaded = client->LoadImage(
        [fd](const ChunkWriter& write) -> Status {
          std::string buffer(1 << 20, '\0');
          while (true) {
            ssize_t n = read(fd, buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::Errno("read the archive");
            if (n == 0) return Ok();
            SBX_TRY(write(std::string_view(buffer.data(), static_cast<size_t>(n))));
          }
        },
        flags->tag);
    if (!loaded) return (void)ctx.Report(loaded.error());
    if (flags->output == "json") {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& i : *loaded) out.push_back(ToJson(i));
      printf("%s\n", out.dump(2).c_str());
      return;
    }
    for (const auto& i : *loaded) {
      printf("loaded %s (%s)\n", i.reference.c_str(), ShortDigest(i.digest).c_str());
    }
    ctx.exit_code = kExitOk;
  });
}

}  // namespace

void AddImagesCommand(CLI::App& app, Context& ctx) {
  CLI::App* images = app.add_subcommand("images", "Manage the node's images: pull, ls, rm, load");
  images->alias("image");
  images->require_subcommand(1);
  AddPull(*images, ctx);
  AddList(*images, ctx);
  AddRemove(*images, ctx);
  AddLoad(*images, ctx);
}

}  // namespace sbx::cli
