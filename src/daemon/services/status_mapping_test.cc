#include "src/daemon/services/status_mapping.h"

#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace sbx::daemon {
namespace {

TEST(StatusMappingTest, ErrorInfoCarriesReasonDomainAndMetadata) {
  Error e = Error::NotFound("no file")
                .WithReason("CWSANDBOX_FILE_NOT_FOUND")
                .WithMetadata("filepath", "/x");
  grpc::Status s = ToGrpcStatus(e);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no file");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CWSANDBOX_FILE_NOT_FOUND");
  EXPECT_EQ(info.domain(), "cwsandbox.com");
  EXPECT_EQ(info.metadata().at("filepath"), "/x");
}

TEST(StatusMappingTest, FieldErrorsAddBadRequest) {
  grpc::Status s = ToGrpcStatus(FieldError("sandbox.spec.tags[0]", "empty tag"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "sandbox.spec.tags[0]");
}

TEST(StatusMappingTest, TextFromASandboxBecomesValidUtf8) {
  // A file name inside a sandbox is any bytes; the status details must still parse.
  Error e = Error::NotFound("open /tmp/\xff\xfe: ENOENT")
                .WithReason("CWSANDBOX_FILE_NOT_FOUND")
                .WithMetadata("filepath", "/tmp/\xff\xfe");
  grpc::Status s = ToGrpcStatus(e);
  EXPECT_EQ(s.error_message(), "open /tmp/\\xff\\xfe: ENOENT");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.message(), "open /tmp/\\xff\\xfe: ENOENT");
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.metadata().at("filepath"), "/tmp/\\xff\\xfe");
}

TEST(StatusMappingTest, CodesMapOneToOne) {
  EXPECT_EQ(ToGrpcStatus(Error::ResourceExhausted("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(Error::Unimplemented("x")).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ToGrpcStatus(Error(Code::kUnauthenticated, "x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace sbx::daemon
