// Element types shared by datasets, engines and the packed-file format.
// The numeric codes equal AscendCL's aclDataType values so they can cross that boundary unchanged.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pymfn {

enum class DType : uint32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kInt8 = 2,
  kInt32 = 3,
  kUInt8 = 4,
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kInt8: return 1;
    case DType::kInt32: return 4;
    case DType::kUInt8: return 1;
  }
  return 0;
}

// numpy-style names: "float32", "float16", "int8", "int32", "uint8".
std::string dtype_name(DType t);
// Throws pymfn::InvalidArgument for an unknown name.
DType dtype_from_name(const std::string& name);
// Returns false for codes outside the enum.
bool dtype_from_code(uint32_t code, DType* out);

// "[1, 112, 112, 3]" (with separator ","  "[1,112,112,3]"): a shape for messages and reports.
std::string shape_str(const std::vector<int64_t>& shape, const char* separator = ", ");

}  // namespace pymfn
