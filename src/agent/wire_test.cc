#include "src/agent/wire.h"

#include <gtest/gtest.h>

#include "src/agent/connection.h"

namespace sbx::agent {
namespace {

TEST(WireTest, HeaderRoundTrip) {
  char buf[kHeaderSize];
  FrameHeader h;
  h.type = 65;
  h.length = 12345;
  EncodeHeader(h, buf);
  auto decoded = DecodeHeader(buf);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->type, 65);
  EXPECT_EQ(decoded->length, 12345u);
}

TEST(WireTest, HeaderRejectsOversizeAndWrongVersion) {
  char buf[kHeaderSize];
  FrameHeader h;
  h.length = kMaxPayload + 1;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf));
  h.length = 1;
  h.version = 9;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf));
}

TEST(WireTest, FieldsRoundTripAndUnknownTagsAreSkipped) {
  FieldWriter w;
  w.PutString(1, "hello");
  w.PutU64(99, 7);  // unknown to the reader below
  w.PutI64(2, -5);
  w.PutBool(3, true);
  FieldReader r(w.data());
  std::string s;
  int64_t i = 0;
  bool b = false;
  while (r.Next()) {
    if (r.tag() == 1) s = r.str();
    if (r.tag() == 2) i = r.i64();
    if (r.tag() == 3) b = r.boolean();
  }
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(s, "hello");
  EXPECT_EQ(i, -5);
  EXPECT_TRUE(b);
}

TEST(WireTest, TruncatedFieldIsMalformed) {
  FieldWriter w;
  w.PutString(1, "hello");
  std::string data = w.data();
  data.pop_back();
  FieldReader r(data);
  while (r.Next()) {
  }
  EXPECT_FALSE(r.ok());
}

TEST(WireTest, WrongSizedIntegerIsMalformed) {
  FieldWriter w;
  w.PutString(1, "abc");
  FieldReader r(w.data());
  ASSERT_TRUE(r.Next());
  (void)r.u64();
  EXPECT_FALSE(r.ok());
}

TEST(FrameBufferTest, SplitsFramesAcrossArbitraryChunks) {
  std::string stream = EncodeFrame(MsgType::kStdin, "abc") + EncodeFrame(MsgType::kStdinClose, "");
  FrameBuffer buffer;
  std::vector<Frame> frames;
  for (char c : stream) {
    buffer.Append(&c, 1);
    while (auto f = buffer.Pop()) {
      ASSERT_TRUE(*f);
      frames.push_back(std::move(**f));
    }
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, MsgType::kStdin);
  EXPECT_EQ(frames[0].payload, "abc");
  EXPECT_EQ(frames[1].type, MsgType::kStdinClose);
}

TEST(FrameBufferTest, OversizeHeaderIsAnErrorBeforeAllocation) {
  char header[kHeaderSize];
  FrameHeader h;
  h.length = 0xffffffff;
  EncodeHeader(h, header);
  FrameBuffer buffer;
  buffer.Append(header, sizeof header);
  auto f = buffer.Pop();
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(*f);
}

}  // namespace
}  // namespace sbx::agent
