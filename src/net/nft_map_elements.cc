#include "src/net/nft_map_elements.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include "src/net/netlink_message.h"

namespace sbx::net {

namespace {

// Every nf_tables change travels in a batch: begin, the changes, end; the kernel commits the
// batch as one transaction.
std::string BatchMarker(uint16_t type, uint32_t seq) {
  NetlinkMessage m(type, 0);
  nfgenmsg g{};
  g.nfgen_family = AF_UNSPEC;
  g.version = NFNETLINK_V0;
  g.res_id = htons(NFNL_SUBSYS_NFTABLES);
  m.Raw(g);
  return m.Finish(seq);
}

std::string ElementMessage(uint16_t op, uint16_t flags, const NftVerdictElement& element,
                           bool with_verdict, uint32_t seq) {
  NetlinkMessage m(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | op),
                   static_cast<uint16_t>(flags | NLM_F_ACK));
  nfgenmsg g{};
  g.nfgen_family = NFPROTO_INET;
  g.version = NFNETLINK_V0;
  m.Raw(g);
  m.AttrString(NFTA_SET_ELEM_LIST_TABLE, element.table);
  m.AttrString(NFTA_SET_ELEM_LIST_SET, element.map);
  size_t elements = m.Begin(NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t item = m.Begin(NFTA_LIST_ELEM);
  size_t key = m.Begin(NFTA_SET_ELEM_KEY);
  uint32_t address = htonl(element.key);
  m.Attr(NFTA_DATA_VALUE, &address, sizeof address);
  m.End(key);
  if (with_verdict) {
    size_t data = m.Begin(NFTA_SET_ELEM_DATA);
    size_t verdict = m.Begin(NFTA_DATA_VERDICT);
    uint32_t code = element.verdict == NftVerdict::kAccept ? NF_ACCEPT : NF_DROP;
    m.AttrU32(NFTA_VERDICT_CODE, htonl(code));
    m.End(verdict);
    m.End(data);
  }
  m.End(item);
  m.End(elements);
  return m.Finish(seq);
}

std::string Describe(const NftVerdictElement& element) {
  return "element " + FormatIpv4(element.key) + " of map inet " + element.table + " " + element.map;
}

}  // namespace

Result<std::unique_ptr<NftMapElements>> NftMapElements::Open() {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenNetlink(NETLINK_NETFILTER, "NETLINK_NETFILTER"));
  return std::unique_ptr<NftMapElements>(new NftMapElements(std::move(fd)));
}

Status NftMapElements::Put(const NftVerdictElement& element) {
  std::lock_guard lock(mu_);
  // Without NLM_F_EXCL the kernel accepts an element that is already there with this verdict.
  Status added = Transact({{NFT_MSG_NEWSETELEM, NLM_F_CREATE}}, element, "add");
  if (added || (added.error().sys_errno() != EEXIST && added.error().sys_errno() != EBUSY)) {
    return added;
  }
  // There with another verdict (left by a removal that failed): replaced in one transaction.
  return Transact({{NFT_MSG_DELSETELEM, 0}, {NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL}},
                  element, "replace");
}

Status NftMapElements::Remove(const NftVerdictElement& element) {
  std::lock_guard lock(mu_);
  return Transact({{NFT_MSG_DELSETELEM, 0}}, element, "remove");
}

Status NftMapElements::Transact(const std::vector<Change>& changes,
                                const NftVerdictElement& element, const std::string& verb) {
  uint32_t first = ++seq_;
  std::string batch = BatchMarker(NFNL_MSG_BATCH_BEGIN, first);
  for (const Change& c : changes) {
    batch += ElementMessage(c.type, c.flags, element, c.type == NFT_MSG_NEWSETELEM, ++seq_);
  }
  uint32_t last = ++seq_;
  batch += BatchMarker(NFNL_MSG_BATCH_END, last);
  return SendAndAwaitAck(fd_.get(), batch, first, last, verb + " " + Describe(element));
}

}  // namespace sbx::net
