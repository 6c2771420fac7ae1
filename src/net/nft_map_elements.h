// File: nft_map_elements.h
//
// The per-sandbox fast path of the rules: elements of an `ipv4_addr : verdict` map in an `inet`
// table, added and removed with nf_tables netlink messages written here. One element is one small
// kernel transaction; libnftables would first parse the command and fetch the table's sets from
// the kernel, which costs milliseconds on the create path of every sandbox. Everything else
// (tables, chains, rules, other sets) stays with libnftables (nftables.h).
//
//   SBX_ASSIGN_OR_RETURN(auto elements, NftMapElements::Open());
//   SBX_TRY(elements->Put({"sbx_1a2b3c", "sandboxes", address, NftVerdict::kAccept}));

#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/ipv4.h"

namespace sbx::net {

enum class NftVerdict { kAccept, kDrop };

// One element of an `ipv4_addr : verdict` map in an `inet` table.
struct NftVerdictElement {
  std::string table;
  std::string map;
  Ipv4 key = 0;
  NftVerdict verdict = NftVerdict::kAccept;
};

// The socket belongs to the network namespace of the thread that opened it.
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
