// File: netlink.h
//
// A small rtnetlink client: the handful of link, address and route operations sbxd needs, as
// messages written here, in-process (no `ip` commands, no fork). A socket belongs to the network
// namespace of the thread that opened it, so a socket opened inside a new namespace keeps
// configuring that namespace after the thread has returned to the host's.
//
//   SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
//   SBX_TRY(rtnl.CreateBridge("sbx0", mac));
//   SBX_ASSIGN_OR_RETURN(int index, rtnl.LinkIndex("sbx0"));
//   SBX_TRY(rtnl.AddAddress(index, gateway, 16));
//
// Not thread-safe: one user at a time per object.

#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/ipv4.h"

namespace sbx::net {

struct LinkInfo {
  int index = 0;
  std::string name;
  int master = 0;  // index of the bridge it is a port of, or 0
};

struct AddressInfo {
  int index = 0;
  Ipv4 address = 0;
  int prefix_length = 0;
};

struct RouteInfo {
  Ipv4Prefix destination;
  int table = 0;
};

class Rtnetlink {
 public:
  // A socket in the calling thread's network namespace.
  static Result<Rtnetlink> Open();

  Status CreateBridge(const std::string& name, const std::array<uint8_t, 6>& mac);
  // A veth pair: `name` here, enslaved to `master` (if not 0) and down; `peer_name` in the
  // namespace `peer_netns_fd`, down.
  Status CreateVeth(const std::string& name, int master, const std::string& peer_name,
                    int peer_netns_fd);
  // kNotFound when there is no such link.
  Result<int> LinkIndex(const std::string& name);
  Status SetUp(int index);
  // Marks a bridge port isolated (it forwards to non-isolated ports only, and a bridge whose
  // ports are all isolated forwards nothing between them) and brings it up.
  Status SetIsolatedPortUp(int index);
  Status DeleteLink(int index);
  Status AddAddress(int index, Ipv4 address, int prefix_length);
  Status AddDefaultRoute(Ipv4 gateway);

  Result<std::vector<LinkInfo>> Links();
  Result<std::vector<AddressInfo>> Addresses();
  Result<std::vector<RouteInfo>> Routes();

 private:
  explicit Rtnetlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // Sends one request and waits for its acknowledgement.
  Status Transact(std::string message, const std::string& what);
  // Sends one dump request; returns every reply message (header included).
  Result<std::vector<std::string>> Dump(std::string message, const std::string& what);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

enum class NftVerdict { kAccept, kDrop };

// One element of an `ipv4_addr : verdict` map in an `inet` table.
struct NftVerdictElement {
  std::string table;
  std::string map;
  Ipv4 key = 0;
  NftVerdict verdict = NftVerdict::kAccept;
};

// Adds and removes verdict-map elements with nf_tables messages written here. One element is one
// small kernel transaction; libnftables would first parse the command and fetch the table's sets
// from the kernel, which costs milliseconds on the create path of every sandbox. Everything else
// (tables, chains, rules, other sets) stays with libnftables (nftables.h).
//
// Like Rtnetlink, the socket belongs to the network namespace of the thread that opened it.
// Thread-safe: transactions are serialized.
class NftMapElements {
 public:
  static Result<std::unique_ptr<NftMapElements>> Open();

  // Gives the key this verdict, whether or not the map holds it already. kNotFound when the map
  // or table does not exist.
  Status Put(const NftVerdictElement& element);
  // kNotFound when the key is not in the map, or the map or table does not exist.
  Status Remove(const NftVerdictElement& element);

 private:
  struct Change {
    uint16_t type;  // NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM
    uint16_t flags;
  };

  explicit NftMapElements(UniqueFd fd) : fd_(std::move(fd)) {}
  // One transaction: each change applied to `element`, in order.
  Status Transact(const std::vector<Change>& changes, const NftVerdictElement& element,
                  const std::string& verb);
  std::mutex mu_;
  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace sbx::net
