// The client library without a daemon: addresses, error mapping, request building, and the host
// half of `sbx cp` (tar out of a tree, tar into a tree, and what a hostile archive cannot do).

#include "sbx/client.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "src/client/channel.h"
#include "src/client/convert.h"
#include "src/client/copy.h"
#include "src/client/status.h"
#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::client {
namespace {

TEST(ChannelTest, ParsesTheThreeForms) {
  auto unix_url = ParseBaseUrl("unix:///run/sbx/sbxd.sock");
  ASSERT_TRUE(unix_url);
  EXPECT_TRUE(unix_url->unix_socket);
  EXPECT_EQ(unix_url->target, "unix:/run/sbx/sbxd.sock");
  EXPECT_EQ(ParseBaseUrl("unix:/tmp/s.sock")->target, "unix:/tmp/s.sock");
  auto http = ParseBaseUrl("http://127.0.0.1:7443/");
  ASSERT_TRUE(http);
  EXPECT_FALSE(http->secure);
  EXPECT_EQ(http->target, "127.0.0.1:7443");
  auto https = ParseBaseUrl("https://sbx.example.com");
  ASSERT_TRUE(https);
  EXPECT_TRUE(https->secure);
  EXPECT_EQ(https->target, "sbx.example.com:443");
  EXPECT_EQ(ParseBaseUrl("http://[::1]:80")->target, "[::1]:80");
}

TEST(ChannelTest, RejectsWhatItCannotReach) {
  for (const char* bad :
       {"", "unix://", "unix:relative.sock", "ftp://host", "http://", "host:1", "http://host:0",
        "http://host:99999", "http://host/path", "http://host:80?x=1", "http://user@host"}) {
    auto parsed = ParseBaseUrl(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
    }
  }
}

TEST(ChannelTest, EnvironmentPrecedence) {
  unsetenv("SBX_BASE_URL");
  unsetenv("CWSANDBOX_BASE_URL");
  EXPECT_EQ(ResolveBaseUrl(""), kDefaultBaseUrl);
  setenv("CWSANDBOX_BASE_URL", "http://b:2", 1);
  EXPECT_EQ(ResolveBaseUrl(""), "http://b:2");
  setenv("SBX_BASE_URL", " http://a:1 ", 1);
  EXPECT_EQ(ResolveBaseUrl(""), "http://a:1");
  EXPECT_EQ(ResolveBaseUrl("unix:///x"), "unix:///x");
  unsetenv("SBX_BASE_URL");
  unsetenv("CWSANDBOX_BASE_URL");

  unsetenv("SBX_API_KEY");
  unsetenv("CWSANDBOX_API_KEY");
  setenv("WANDB_API_KEY", "w", 1);
  EXPECT_EQ(ResolveApiKey(""), "w");
  setenv("SBX_API_KEY", "s", 1);
  EXPECT_EQ(ResolveApiKey(""), "s");
  EXPECT_EQ(ResolveApiKey("explicit"), "explicit");
  unsetenv("SBX_API_KEY");
  unsetenv("WANDB_API_KEY");
}

TEST(StatusTest, CarriesReasonMetadataAndField) {
  google::rpc::Status details;
  details.set_code(3);
  google::rpc::ErrorInfo info;
  info.set_reason("CWSANDBOX_INVALID_REQUEST");
  info.set_domain("cwsandbox.com");
  (*info.mutable_metadata())["sandbox_id"] = "sb-1";
  details.add_details()->PackFrom(info);
  google::rpc::BadRequest bad;
  bad.add_field_violations()->set_field("sandbox.spec.tags[0]");
  details.add_details()->PackFrom(bad);
  grpc::Status status(grpc::StatusCode::INVALID_ARGUMENT, "sandbox.spec.tags[0]: empty tag",
                      details.SerializeAsString());
  Error e = FromGrpcStatus(status, "unix:///x");
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_EQ(e.message(), "sandbox.spec.tags[0]: empty tag");
  EXPECT_EQ(e.reason(), "CWSANDBOX_INVALID_REQUEST");
  EXPECT_EQ(e.MetadataValue("sandbox_id"), "sb-1");
  EXPECT_EQ(e.MetadataValue("field"), "sandbox.spec.tags[0]");
}

TEST(StatusTest, AnUnansweredCallIsUnreachable) {
  Error e = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed to connect"),
                           "unix:///nowhere.sock");
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_EQ(e.reason(), kReasonDaemonUnreachable);
  EXPECT_NE(e.message().find("unix:///nowhere.sock"), std::string::npos);
}

TEST(ClientTest, AbsentDaemonIsReportedOnTheFirstCall) {
  testing::TempDir dir;
  auto client = Client::Connect(
      {.base_url = "unix://" + dir.Sub("sbxd.sock"), .timeout = std::chrono::seconds(5)});
  ASSERT_TRUE(client);
  auto got = client->Get("anything");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kUnavailable);
  EXPECT_EQ(got.error().reason(), kReasonDaemonUnreachable);
  EXPECT_FALSE(Client::Connect({.base_url = "gopher://x"}));
}

TEST(ConvertTest, StatesAndSpecs) {
  EXPECT_EQ(StateName(SandboxState::kRunning), "RUNNING");
  EXPECT_EQ(ParseState("running"), SandboxState::kRunning);
  EXPECT_EQ(ParseState("STATE_TERMINATED"), SandboxState::kTerminated);
  EXPECT_FALSE(ParseState("sleeping"));
  EXPECT_TRUE(IsTerminal(SandboxState::kFailed));
  EXPECT_FALSE(IsTerminal(SandboxState::kTerminating));

  SandboxSpec spec;
  spec.image = "busybox";
  spec.tags = {"a", "b"};
  spec.deny_egress = true;
  cw::CreateSandboxRequest request;
  ToProto(spec, &request);
  const auto& c = request.sandbox().spec().containers(0);
  EXPECT_EQ(c.command(), kKeepAliveCommand);  // no command: keep-alive
  EXPECT_EQ(request.sandbox().spec().tags_size(), 2);
  EXPECT_TRUE(request.sandbox().spec().network().deny_egress());
  EXPECT_EQ(request.request_id().size(), 36u);

  spec.use_image_command = true;
  request.Clear();
  ToProto(spec, &request);
  EXPECT_EQ(request.sandbox().spec().containers(0).command(), "");
  EXPECT_EQ(request.sandbox().spec().containers(0).args_size(), 0);

  spec.command = "echo";
  spec.args = {"hi"};
  request.Clear();
  ToProto(spec, &request);
  EXPECT_EQ(request.sandbox().spec().containers(0).command(), "echo");
  EXPECT_EQ(request.sandbox().spec().containers(0).args(0), "hi");
}

TEST(ConvertTest, ServicesSecretsAndEgressReachTheWire) {
  SandboxSpec spec;
  spec.services = {{8080, "web", "tcp", Visibility::kPrivate},
                   {53, "", "udp", Visibility::kPrivate}};
  spec.secrets = {
      {"team", "HF_TOKEN", "", ""}, {"team", "creds", "password", "DB"}, {"default", "K", "", "V"}};
  EgressRule name;
  name.dns_name = "pypi.org";
  name.ports = {{"tcp", 443, 0}};
  EgressRule block;
  block.cidr = "203.0.113.0/24";
  block.except = {"203.0.113.7/32"};
  spec.egress = {name, block};
  cw::CreateSandboxRequest request;
  ToProto(spec, &request);
  const auto& wire = request.sandbox().spec();
  ASSERT_EQ(wire.services_size(), 2);
  EXPECT_EQ(wire.services(0).port(), 8080);
  EXPECT_EQ(wire.services(0).name(), "web");
  EXPECT_EQ(wire.services(0).visibility(), cw::VISIBILITY_PRIVATE);
  EXPECT_EQ(wire.services(1).protocol(), cw::SERVICE_PROTOCOL_UDP);
  // One reference per store, each secret in it; the variable defaults to the secret's name.
  const auto& c = wire.containers(0);
  ASSERT_EQ(c.secret_stores_size(), 2);
  EXPECT_EQ(c.secret_stores(0).store_name(), "team");
  ASSERT_EQ(c.secret_stores(0).secrets_size(), 2);
  EXPECT_EQ(c.secret_stores(0).secrets(0).env_var(), "HF_TOKEN");
  EXPECT_EQ(c.secret_stores(0).secrets(1).field(), "password");
  EXPECT_EQ(c.secret_stores(0).secrets(1).env_var(), "DB");
  EXPECT_EQ(c.secret_stores(1).secrets(0).path(), "K");
  ASSERT_EQ(wire.network().egress_size(), 2);
  EXPECT_EQ(wire.network().egress(0).dns_name(), "pypi.org");
  EXPECT_EQ(wire.network().egress(0).ports(0).port(), 443);
  EXPECT_EQ(wire.network().egress(1).cidr().except(0), "203.0.113.7/32");
  EXPECT_FALSE(wire.network().has_deny_egress());

  cw::Sandbox sandbox;
  auto* status = sandbox.mutable_status();
  auto* service = status->add_services();
  service->set_port(8080);
  service->set_protocol(cw::SERVICE_PROTOCOL_TCP);
  service->set_visibility(cw::VISIBILITY_PUBLIC);
  service->set_url("http://10.1.0.1:30001");
  status->add_effective_egress()->set_any(true);
  Sandbox back = FromProto(sandbox);
  ASSERT_EQ(back.services.size(), 1u);
  EXPECT_EQ(back.services[0].url, "http://10.1.0.1:30001");
  EXPECT_EQ(back.services[0].visibility, Visibility::kPublic);
  EXPECT_EQ(back.services[0].protocol, "tcp");
  ASSERT_EQ(back.egress.size(), 1u);
  EXPECT_TRUE(back.egress[0].any);
}

// A tree with what users copy: nested directories, binary and empty files, an executable, a
// relative symlink, and a read-only directory.
void MakeTree(const std::string& root) {
  ASSERT_TRUE(sys::MakeDirs(root + "/src/pkg/deep"));
  std::string binary;
  for (int i = 0; i < 300000; ++i) binary += static_cast<char>(i * 7);
  ASSERT_TRUE(sys::WriteFile(root + "/src/data.bin", binary));
  ASSERT_TRUE(sys::WriteFile(root + "/src/empty", ""));
  ASSERT_TRUE(sys::WriteFile(root + "/src/run.sh", "#!/bin/sh\necho hi\n", 0755));
  ASSERT_TRUE(sys::WriteFile(root + "/src/pkg/deep/x.txt", "deep\n"));
  ASSERT_EQ(symlink("pkg/deep/x.txt", (root + "/src/link").c_str()), 0);
  ASSERT_TRUE(sys::MakeDirs(root + "/src/ro"));
  ASSERT_TRUE(sys::WriteFile(root + "/src/ro/f", "ro"));
  ASSERT_EQ(chmod((root + "/src/ro").c_str(), 0555), 0);
}

std::string Tar(const std::string& path, const std::string& top) {
  std::string out;
  Status written = WriteHostTree(
      path, top, false, {},
      [&](std::string_view chunk) {
        out.append(chunk);
        return Ok();
      },
      nullptr);
  EXPECT_TRUE(written) << written.error().ToString();
  return out;
}

Result<CopyStats> Untar(const std::string& tar, const std::string& dest,
                        const CopyOptions& options = {}) {
  bool sent = false;
  return ExtractToHost(
      [&](std::string* chunk) {
        if (sent) return false;
        *chunk = tar;
        sent = true;
        return true;
      },
      dest, options);
}

void ExpectSameTree(const std::string& a, const std::string& b) {
  for (const char* f : {"/data.bin", "/empty", "/run.sh", "/pkg/deep/x.txt", "/ro/f"}) {
    EXPECT_EQ(*sys::ReadFile(a + f, 1 << 20), *sys::ReadFile(b + f, 1 << 20)) << f;
  }
  struct stat st {};
  ASSERT_EQ(stat((b + "/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  ASSERT_EQ(stat((b + "/ro").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0555u);
  char link[256] = {};
  ASSERT_GT(readlink((b + "/link").c_str(), link, sizeof link - 1), 0);
  EXPECT_STREQ(link, "pkg/deep/x.txt");
}

TEST(CopyTest, TreeRoundTripIntoAnExistingDirectory) {
  testing::TempDir src, dst;
  MakeTree(src.path());
  std::string tar = Tar(src.Sub("src"), "src");
  auto type = FirstEntryType(tar);
  ASSERT_TRUE(type);
  EXPECT_EQ(**type, '5');
  auto stats = Untar(tar, dst.path());
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(stats->files, 6);  // five files and a symlink
  ExpectSameTree(src.Sub("src"), dst.Sub("src"));
  chmod(dst.Sub("src/ro").c_str(), 0755);
  chmod(src.Sub("src/ro").c_str(), 0755);
}

TEST(CopyTest, TreeRoundTripToANewNameAndContents) {
  testing::TempDir src, dst;
  MakeTree(src.path());
  // A missing destination becomes the copy.
  auto renamed = Untar(Tar(src.Sub("src"), "src"), dst.Sub("copy"));
  ASSERT_TRUE(renamed) << renamed.error().ToString();
  ExpectSameTree(src.Sub("src"), dst.Sub("copy"));
  // "." as the top: the contents go into the destination.
  auto contents = Untar(Tar(src.Sub("src"), "."), dst.Sub("contents"));
  ASSERT_TRUE(contents) << contents.error().ToString();
  ExpectSameTree(src.Sub("src"), dst.Sub("contents"));
  // A directory onto a file is refused; a file onto a file replaces it.
  ASSERT_TRUE(sys::WriteFile(dst.Sub("file"), "old"));
  EXPECT_FALSE(Untar(Tar(src.Sub("src"), "src"), dst.Sub("file")));
  ASSERT_TRUE(Untar(Tar(src.Sub("src/run.sh"), "run.sh"), dst.Sub("file")));
  EXPECT_EQ(*sys::ReadFile(dst.Sub("file")), "#!/bin/sh\necho hi\n");
  for (const char* d : {"copy/ro", "contents/ro", "src/ro"}) {
    chmod((std::string(d)[0] == 's' ? src.Sub(d) : dst.Sub(d)).c_str(), 0755);
  }
}

// An archive as a hostile sandbox would write it.
class HostileArchive {
 public:
  HostileArchive() : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_open(a_, this, nullptr, &HostileArchive::Write, nullptr);
  }
  ~HostileArchive() { archive_write_free(a_); }
  void Add(const std::string& name, unsigned type, const std::string& data = "", mode_t mode = 0644,
           const std::string& link = "", bool hardlink = false) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_size(
        e, type == AE_IFREG && !hardlink ? static_cast<la_int64_t>(data.size()) : 0);
    if (type == AE_IFLNK) archive_entry_set_symlink(e, link.c_str());
    if (hardlink) archive_entry_set_hardlink(e, link.c_str());
    archive_write_header(a_, e);
    if (!data.empty() && !hardlink) archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
  }
  std::string Take() {
    archive_write_close(a_);
    return out_;
  }

 private:
  static la_ssize_t Write(archive*, void* self, const void* buf, size_t n) {
    static_cast<HostileArchive*>(self)->out_.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive* a_;
  std::string out_;
};

TEST(CopyTest, HostileNamesAreRefused) {
  testing::TempDir dst;
  for (const char* name : {"../escape", "/etc/evil", "a/../../escape"}) {
    HostileArchive h;
    h.Add("top", AE_IFDIR, "", 0755);
    h.Add(name, AE_IFREG, "x");
    auto result = Untar(h.Take(), dst.path());
    EXPECT_FALSE(result) << name;
  }
  EXPECT_FALSE(sys::PathExists(dst.path() + "/../escape"));
}

TEST(CopyTest, NothingIsWrittenThroughASymlink) {
  testing::TempDir dst, outside;
  HostileArchive h;
  h.Add("top", AE_IFDIR, "", 0755);
  h.Add("top/a", AE_IFLNK, "", 0777, outside.path());
  h.Add("top/a/owned", AE_IFREG, "gotcha");
  auto result = Untar(h.Take(), dst.path());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), Code::kPermissionDenied);
  EXPECT_FALSE(sys::PathExists(outside.Sub("owned")));
  // A link already in the destination is not followed either.
  ASSERT_EQ(symlink(outside.path().c_str(), dst.Sub("pre").c_str()), 0);
  HostileArchive h2;
  h2.Add("pre/owned", AE_IFREG, "gotcha");
  EXPECT_FALSE(Untar(h2.Take(), dst.path()));
  EXPECT_FALSE(sys::PathExists(outside.Sub("owned")));
}

TEST(CopyTest, PrivilegeBitsDevicesAndHardLinksAreDropped) {
  testing::TempDir dst;
  HostileArchive h;
  h.Add("top", AE_IFDIR, "", 0755);
  h.Add("top/suid", AE_IFREG, "x", 06755);
  h.Add("top/fifo", AE_IFIFO);
  h.Add("top/hard", AE_IFREG, "", 0644, "/etc/shadow", true);
  std::vector<std::string> skipped;
  CopyOptions options;
  options.on_skip = [&](const std::string& path, const std::string&) { skipped.push_back(path); };
  auto result = Untar(h.Take(), dst.path(), options);
  ASSERT_TRUE(result) << result.error().ToString();
  struct stat st {};
  ASSERT_EQ(stat(dst.Sub("top/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(sys::PathExists(dst.Sub("top/fifo")));
  EXPECT_FALSE(sys::PathExists(dst.Sub("top/hard")));
  EXPECT_EQ(skipped.size(), 2u);
}

TEST(CopyTest, FirstEntryTypeNeedsAWholeHeader) {
  testing::TempDir src;
  ASSERT_TRUE(sys::WriteFile(src.Sub("f"), "data"));
  std::string tar = Tar(src.Sub("f"), "f");
  auto partial = FirstEntryType(tar.substr(0, 100));
  ASSERT_TRUE(partial);
  EXPECT_FALSE(*partial);
  EXPECT_EQ(**FirstEntryType(tar), '0');
  EXPECT_FALSE(FirstEntryType(std::string(512, 'x')));
}

}  // namespace
}  // namespace sbx::client
