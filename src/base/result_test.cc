#include "src/base/result.h"

#include <errno.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace sbx {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Error::InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  SBX_ASSIGN_OR_RETURN(int half, Half(x));
  SBX_ASSIGN_OR_RETURN_CTX(int quarter, Half(half), "second half");
  return quarter;
}

Status CheckEven(int x) {
  SBX_TRY_CTX(Half(x), "check");
  return Ok();
}

TEST(ResultTest, ValuePropagates) {
  auto r = Quarter(8);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 2);
}

TEST(ResultTest, ErrorPropagatesWithContext) {
  auto r = Quarter(6);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "second half: odd: 3");
  auto s = CheckEven(3);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().ToString(), "INVALID_ARGUMENT: check: odd: 3");
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ErrorTest, FromErrnoNamesTheErrno) {
  Error e = Error::FromErrno(ENOENT, "open \"/x\"");
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.message(), "open \"/x\": ENOENT (No such file or directory)");
}

TEST(ErrorTest, ReasonAndMetadata) {
  Error e = Error::NotFound("no file")
                .WithReason("CWSANDBOX_FILE_NOT_FOUND")
                .WithMetadata("filepath", "/a")
                .WithMetadata("filepath", "/b");
  EXPECT_EQ(e.reason(), "CWSANDBOX_FILE_NOT_FOUND");
  EXPECT_EQ(e.MetadataValue("filepath"), "/b");
  EXPECT_EQ(e.metadata().size(), 1u);
  EXPECT_EQ(e.MetadataValue("missing"), "");
}

TEST(ErrorTest, OkCodeIsNeverAnError) {
  Error e(Code::kOk, "x");
  EXPECT_EQ(e.code(), Code::kUnknown);
}

TEST(ErrorTest, ErrnoCodeMapping) {
  EXPECT_EQ(CodeFromErrno(EACCES), Code::kPermissionDenied);
  EXPECT_EQ(CodeFromErrno(ENOSPC), Code::kResourceExhausted);
  EXPECT_EQ(CodeFromErrno(EEXIST), Code::kAlreadyExists);
  EXPECT_EQ(ErrnoName(EPERM), "EPERM");
}

}  // namespace
}  // namespace sbx
