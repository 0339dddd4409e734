#include "core/dtype.h"

#include "core/errors.h"

namespace pymfn {

std::string dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
  }
  return "unknown";
}

DType dtype_from_name(const std::string& name) {
  if (name == "float32" || name == "f32" || name == "fp32") return DType::kFloat32;
  if (name == "float16" || name == "f16" || name == "fp16") return DType::kFloat16;
  if (name == "int8") return DType::kInt8;
  if (name == "int32") return DType::kInt32;
  if (name == "uint8" || name == "u8") return DType::kUInt8;
  throw InvalidArgument("unknown dtype '" + name + "' (expected float32, float16, int8, int32 or uint8)");
}

bool dtype_from_code(uint32_t code, DType* out) {
  if (code > static_cast<uint32_t>(DType::kUInt8)) return false;
  *out = static_cast<DType>(code);
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape, const char* separator) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? separator : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace pymfn
