#include "src/net/host_networks.h"

#include <linux/rtnetlink.h>

#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sbx::net {
namespace {

using ::testing::Contains;
using ::testing::Not;

Ipv4Prefix P(const char* text) { return *ParseIpv4Prefix(text); }
Ipv4 A(const char* text) { return *ParseIpv4(text); }

RouteInfo Route(const char* destination, std::vector<Ipv4> gateways = {}, int table = RT_TABLE_MAIN,
                int type = RTN_UNICAST) {
  return {P(destination), table, type, std::move(gateways)};
}

TEST(HostNetworksTest, SubnetsOfTheAddressesAndTheAddresses) {
  auto networks = HostNetworks({{2, A("198.51.100.7"), 24, A("198.51.100.7")}}, {});
  EXPECT_THAT(networks, Contains(P("198.51.100.0/24")));
  EXPECT_THAT(networks, Contains(P("198.51.100.7/32")));
}

TEST(HostNetworksTest, APointToPointPeerIsOnTheHostsNetwork) {
  auto networks = HostNetworks({{3, A("192.0.2.1"), 32, A("192.0.2.99")}}, {});
  EXPECT_THAT(networks, Contains(P("192.0.2.1/32")));
  EXPECT_THAT(networks, Contains(P("192.0.2.99/32")));
}

TEST(HostNetworksTest, OnLinkRoutesAndEveryGateway) {
  auto networks = HostNetworks(
      {}, {Route("0.0.0.0/0", {A("198.51.100.1")}),
           // A network on a link with no address of the host's in it.
           Route("203.0.113.0/25"),
           // A gateway reached on link although no subnet holds it (a /32 cloud address).
           Route("192.0.2.0/24", {A("203.0.113.200"), A("203.0.113.201")})});
  EXPECT_THAT(networks, Contains(P("198.51.100.1/32")));
  EXPECT_THAT(networks, Contains(P("203.0.113.0/25")));
  EXPECT_THAT(networks, Contains(P("203.0.113.200/32")));
  EXPECT_THAT(networks, Contains(P("203.0.113.201/32")));
  // What lies behind a gateway is the internet, not the host's network.
  EXPECT_THAT(networks, Not(Contains(P("192.0.2.0/24"))));
  EXPECT_THAT(networks, Not(Contains(P("0.0.0.0/0"))));
}

TEST(HostNetworksTest, LocalTableOtherTypesAndVeryWideNetworksAreLeftOut) {
  auto networks = HostNetworks({{4, A("100.0.0.1"), 4, A("100.0.0.1")}},
                               {Route("203.0.113.9/32", {}, RT_TABLE_LOCAL, RTN_LOCAL),
                                Route("198.51.100.0/24", {}, RT_TABLE_MAIN, RTN_BLACKHOLE),
                                // A VPN routing half of the internet on link.
                                Route("0.0.0.0/1"), Route("128.0.0.0/1")});
  EXPECT_THAT(networks, Not(Contains(P("203.0.113.9/32"))));
  EXPECT_THAT(networks, Not(Contains(P("198.51.100.0/24"))));
  EXPECT_THAT(networks, Not(Contains(P("0.0.0.0/1"))));
  EXPECT_THAT(networks, Not(Contains(P("96.0.0.0/4"))));
  // The address itself still is the host's.
  EXPECT_THAT(networks, Contains(P("100.0.0.1/32")));
  // Other routing tables (policy routing) are the host's networks all the same.
  EXPECT_THAT(HostNetworks({}, {Route("203.0.113.0/24", {}, 52)}), Contains(P("203.0.113.0/24")));
}

}  // namespace
}  // namespace sbx::net
