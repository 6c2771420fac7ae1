#include "src/image/content_store.h"

#include <dirent.h>

#include <gtest/gtest.h>

#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::image {
namespace {

using sbx::testing::TempDir;

TEST(ContentStoreTest, IngestVerifiesSizeAndDigest) {
  TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_TRUE(store) << store.error().ToString();
  std::string data = "hello blob";
  std::string digest = Sha256Digest(data);
  {
    auto ingest = (*store)->StartIngest(digest, data.size());
    ASSERT_TRUE(ingest);
    ASSERT_TRUE((*ingest)->Write("hello "));
    EXPECT_FALSE((*store)->Has(digest));  // not visible until committed
    ASSERT_TRUE((*ingest)->Write("blob"));
    ASSERT_TRUE((*ingest)->Commit());
  }
  EXPECT_TRUE((*store)->Has(digest));
  EXPECT_EQ(*(*store)->Size(digest), data.size());
  EXPECT_EQ(*(*store)->ReadBlob(digest, 1024), data);

  // Wrong content: refused, nothing published, nothing left in ingest/.
  std::string other = Sha256Digest("other");
  {
    auto ingest = (*store)->StartIngest(other, data.size());
    ASSERT_TRUE(ingest);
    ASSERT_TRUE((*ingest)->Write(data));
    auto committed = (*ingest)->Commit();
    ASSERT_FALSE(committed);
    EXPECT_EQ(committed.error().code(), Code::kDataLoss);
    EXPECT_EQ(committed.error().reason(), "SBX_IMAGE_DIGEST_MISMATCH");
  }
  EXPECT_FALSE((*store)->Has(other));
  {
    auto ingest = (*store)->StartIngest(other, 3);
    ASSERT_TRUE(ingest);
    auto too_long = (*ingest)->Write("four");
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().code(), Code::kDataLoss);
    ASSERT_TRUE((*ingest)->Restart());
    ASSERT_TRUE((*ingest)->Write("ab"));
    EXPECT_FALSE((*ingest)->Commit());  // short
  }
  DIR* ingest_dir = opendir(dir.Sub("ingest").c_str());
  ASSERT_NE(ingest_dir, nullptr);
  int leftovers = 0;
  while (dirent* e = readdir(ingest_dir)) leftovers += e->d_name[0] != '.';
  closedir(ingest_dir);
  EXPECT_EQ(leftovers, 0);

  // An ingest of unknown digest publishes under what it hashes to.
  {
    auto ingest = (*store)->StartIngest("", 100);
    ASSERT_TRUE(ingest);
    ASSERT_TRUE((*ingest)->Write("abc"));
    ASSERT_TRUE((*ingest)->Commit());
    EXPECT_EQ((*ingest)->digest(), Sha256Digest("abc"));
  }
  EXPECT_TRUE((*store)->Has(Sha256Digest("abc")));
  auto list = (*store)->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
  ASSERT_TRUE((*store)->Delete(digest));
  EXPECT_FALSE((*store)->Has(digest));
  ASSERT_TRUE((*store)->Delete(digest));  // absent is fine

  // A corrupted blob on disk is detected when read.
  ASSERT_TRUE(sys::WriteFile((*store)->BlobPath(Sha256Digest("abc")), "abd"));
  auto corrupt = (*store)->ReadBlob(Sha256Digest("abc"), 1024);
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), Code::kDataLoss);
  EXPECT_FALSE((*store)->StartIngest("sha256:../../etc", 1));
}

}  // namespace
}  // namespace sbx::image
