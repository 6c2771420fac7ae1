#include "src/daemon/services/log_lines.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(LogLineSplitterTest, ALineWrittenInPiecesIsOneLineAtTheTimeOfItsLastPiece) {
  LogLineSplitter lines;
  EXPECT_TRUE(lines.Feed("Downloading... ", 15, 100).empty());
  auto done = lines.Feed("done\nnext", 24, 200);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].data, "Downloading... done\n");
  EXPECT_EQ(done[0].time_ns, 200);
  EXPECT_EQ(done[0].end_offset, 20u);
  auto last = lines.Flush();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->data, "next");
  EXPECT_EQ(last->end_offset, 24u);
  EXPECT_FALSE(lines.Flush());
}

TEST(LogLineSplitterTest, OneWriteOfSeveralLinesIsSeveralLines) {
  LogLineSplitter lines;
  auto out = lines.Feed("a\nbb\n\nccc\n", 110, 5);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].data, "a\n");
  EXPECT_EQ(out[0].end_offset, 102u);
  EXPECT_EQ(out[1].data, "bb\n");
  EXPECT_EQ(out[2].data, "\n");
  EXPECT_EQ(out[3].data, "ccc\n");
  EXPECT_EQ(out[3].end_offset, 110u);
  EXPECT_FALSE(lines.Flush());
}

TEST(LogLineSplitterTest, ALineLongerThanTheCapIsCutAtTheCap) {
  LogLineSplitter lines(4);
  auto out = lines.Feed("abcdefghij\n", 11, 1);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].data, "abcd");
  EXPECT_EQ(out[1].data, "efgh");
  EXPECT_EQ(out[2].data, "ij\n");
  EXPECT_EQ(out[2].end_offset, 11u);
}

}  // namespace
}  // namespace sbx::daemon
