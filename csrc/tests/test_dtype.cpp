// Element-type helpers, and that their codes are AscendCL's aclDataType values (the packed format and
// the ACL engine pass them across unchanged).
#include <cstdint>

#include "acl/acl_base.h"
#include "core/dtype.h"
#include "core/errors.h"
#include "tests/check.h"

using pymfn::DType;

static_assert(static_cast<uint32_t>(DType::kFloat32) == ACL_FLOAT, "DType codes are aclDataType values");
static_assert(static_cast<uint32_t>(DType::kFloat16) == ACL_FLOAT16, "DType codes are aclDataType values");
static_assert(static_cast<uint32_t>(DType::kInt8) == ACL_INT8, "DType codes are aclDataType values");
static_assert(static_cast<uint32_t>(DType::kInt32) == ACL_INT32, "DType codes are aclDataType values");
static_assert(static_cast<uint32_t>(DType::kUInt8) == ACL_UINT8, "DType codes are aclDataType values");

TEST(sizes_and_names) {
  CHECK_EQ(pymfn::dtype_size(DType::kFloat32), size_t{4});
  CHECK_EQ(pymfn::dtype_size(DType::kFloat16), size_t{2});
  CHECK_EQ(pymfn::dtype_size(DType::kInt8), size_t{1});
  CHECK_EQ(pymfn::dtype_size(DType::kInt32), size_t{4});
  CHECK_EQ(pymfn::dtype_size(DType::kUInt8), size_t{1});
  CHECK_EQ(pymfn::dtype_name(DType::kFloat32), std::string("float32"));
  CHECK_EQ(pymfn::dtype_name(DType::kFloat16), std::string("float16"));
  CHECK_EQ(pymfn::dtype_name(DType::kInt8), std::string("int8"));
  CHECK_EQ(pymfn::dtype_name(DType::kInt32), std::string("int32"));
  CHECK_EQ(pymfn::dtype_name(DType::kUInt8), std::string("uint8"));
}

TEST(every_name_round_trips) {
  for (uint32_t code = 0; code <= 4; ++code) {
    DType t;
    CHECK(pymfn::dtype_from_code(code, &t));
    CHECK_EQ(static_cast<uint32_t>(t), code);
    CHECK(pymfn::dtype_from_name(pymfn::dtype_name(t)) == t);
  }
}

TEST(short_names_are_accepted) {
  CHECK(pymfn::dtype_from_name("f32") == DType::kFloat32);
  CHECK(pymfn::dtype_from_name("fp32") == DType::kFloat32);
  CHECK(pymfn::dtype_from_name("f16") == DType::kFloat16);
  CHECK(pymfn::dtype_from_name("fp16") == DType::kFloat16);
  CHECK(pymfn::dtype_from_name("u8") == DType::kUInt8);
}

TEST(unknown_names_and_codes_are_refused) {
  CHECK_THROWS(pymfn::dtype_from_name("bfloat16"), pymfn::InvalidArgument, "'bfloat16'");
  CHECK_THROWS(pymfn::dtype_from_name(""), pymfn::InvalidArgument, "unknown dtype");
  CHECK_THROWS(pymfn::dtype_from_name("FLOAT32"), pymfn::InvalidArgument, "unknown dtype");
  DType t = DType::kInt8;
  CHECK(!pymfn::dtype_from_code(5, &t));
  CHECK(!pymfn::dtype_from_code(0xFFFFFFFFu, &t));
  CHECK(t == DType::kInt8);  // untouched on failure
}
