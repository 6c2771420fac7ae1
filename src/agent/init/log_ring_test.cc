#include "src/agent/init/log_ring.h"

#include <gtest/gtest.h>

namespace sbx::agent {
namespace {

std::string Collect(const std::vector<LogChunk>& chunks) {
  std::string out;
  for (const auto& c : chunks) out += c.data;
  return out;
}

TEST(LogRingTest, ReadsFromOffsets) {
  LogRing ring(100);
  ring.Append(StreamId::kStdout, "hello ", 1);
  ring.Append(StreamId::kStderr, "world", 2);
  EXPECT_EQ(ring.start(), 0u);
  EXPECT_EQ(ring.end(), 11u);
  EXPECT_EQ(Collect(ring.Read(0, 1000)), "hello world");
  EXPECT_EQ(Collect(ring.Read(3, 1000)), "lo world");
  auto chunks = ring.Read(6, 1000);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].stream, StreamId::kStderr);
  EXPECT_EQ(chunks[0].offset, 6u);
  EXPECT_TRUE(ring.Read(11, 1000).empty());
}

TEST(LogRingTest, DropsOldestBeyondCapacity) {
  LogRing ring(10);
  ring.Append(StreamId::kStdout, "0123456789", 1);
  ring.Append(StreamId::kStdout, "abcde", 5000000);
  EXPECT_EQ(ring.end(), 15u);
  EXPECT_EQ(ring.start(), 5u);
  EXPECT_EQ(Collect(ring.Read(0, 1000)), "56789abcde");
}

TEST(LogRingTest, OversizedWriteKeepsTail) {
  LogRing ring(4);
  ring.Append(StreamId::kStdout, "abcdefgh", 1);
  EXPECT_EQ(ring.start(), 4u);
  EXPECT_EQ(ring.end(), 8u);
  EXPECT_EQ(Collect(ring.Read(0, 100)), "efgh");
}

TEST(LogRingTest, ReadRespectsBudget) {
  LogRing ring(100);
  ring.Append(StreamId::kStdout, "aaaa", 1);
  ring.Append(StreamId::kStderr, "bbbb", 2);
  EXPECT_EQ(Collect(ring.Read(0, 6)), "aaaabb");
}

}  // namespace
}  // namespace sbx::agent
