// The 256-byte header at the start of every Ascend .om file, and pymfn's emulator payload behind it.
//
// Why: the ACL engine checks a file before handing it to aclmdlLoadFromFile (a clear FormatError naming
// the file beats ACL error 100013), and the emulator must recognise the om files it can execute.
// Layout (little-endian, from Huawei's graph-engine source, see /work/shared/docs/ascend.md):
//   0 magic u32 = 0x444F4D49 ("IMOD" on disk)   4 headsize u32 = 256   8 version u32
//  12 checksum u8[64]   76 length u32   80 is_encrypt u8   81 is_checksum u8   82 modeltype u8   83 genmode u8
//  84 name char[32]    116 ops u32     120 userdefineinfo u8[32]   152 om_ir_version u32   156 model_num u32
// 160 platform_version u8[20]   180 platform_type u8   181..255 reserved (zero)
//
// Emulator payload (pymfn's own format; real om files carry a partition table instead). The header's
// userdefineinfo starts with kEmulatorMarker and `length` is the payload size (= file size - 256):
//   0 char[8] "PMFNEMU1"   8 u64 meta_len   16 u64 xml_len   24 u64 weights_len
//  32 meta (UTF-8 text, see EmulatorMeta)   then the OpenVINO IR xml   then the IR weights (.bin)
//
// Two API levels: the no-throw functions (bool + error string) are for the emulator, which must never
// throw across its C boundary; read_om_header() throws pymfn::InputError/FormatError for the engine.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pymfn {
namespace om {

constexpr uint32_t kMagic = 0x444F4D49u;
constexpr size_t kHeaderSize = 256;
// userdefineinfo of an emulator om starts with these bytes (NUL-padded to 32).
constexpr const char* kEmulatorMarker = "pymfn-acl-emulator";
constexpr const char* kPayloadMagic = "PMFNEMU1";
constexpr size_t kPayloadPrefix = 32;
// Meta limits (pymfn/om.py checks the same): dims per tensor, dynamic batch sizes, and the bytes of one
// tensor at the largest batch, so no size derived from a meta overflows or asks for absurd memory.
constexpr size_t kMaxMetaDims = 8;
constexpr uint64_t kMaxDynamicBatch = 2048;
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 40;

struct OmHeader {
  uint32_t magic = kMagic;
  uint32_t headsize = static_cast<uint32_t>(kHeaderSize);
  uint32_t version = 1;
  std::array<uint8_t, 64> checksum{};
  uint32_t length = 0;  // bytes after the header
  uint8_t is_encrypt = 0;
  uint8_t is_checksum = 0;
  uint8_t modeltype = 0;
  uint8_t genmode = 0;
  std::string name;  // up to 31 chars (NUL-terminated field of 32)
  uint32_t ops = 0;
  std::array<uint8_t, 32> userdefineinfo{};
  uint32_t om_ir_version = 0;
  uint32_t model_num = 1;
  std::string platform_version;  // up to 19 chars
  uint8_t platform_type = 0;

  // userdefineinfo starts with kEmulatorMarker.
  bool is_emulator() const;
  // Sets userdefineinfo to the marker.
  void mark_emulator();
};

// Text taken from a file, fit for a message or a report: printable ASCII kept, every other byte
// written \xNN, at most 80 characters (then "..."). Header names and meta lines can hold any bytes.
std::string printable(const std::string& raw);

// Parses and validates (size >= 256, magic, headsize == 256). No throw: false + *error on failure.
bool parse_header(const uint8_t* data, size_t size, OmHeader* out, std::string* error);

// 256 bytes ready to write. Fails (false + *error) when name/platform_version do not fit.
bool encode_header(const OmHeader& header, std::vector<uint8_t>* out, std::string* error);

// Reads the first 256 bytes of `path` and validates them. Throws InputError when the file cannot be
// opened or is not a regular file, and FormatError (with the path) when it is too short or not an om file. For emulator files it
// also checks that `length` equals the bytes that follow the header (a truncated copy is caught here).
OmHeader read_om_header(const std::string& path);

// ---------------------------------------------------------------- emulator payload

struct EmulatorTensor {
  std::string name;
  std::string dtype;    // "float32" | "float16" | "uint8" | "int32" | "int64"
  std::string format;   // "NHWC" | "NCHW" | "ND"
  std::vector<int64_t> dims;  // -1 first = dynamic batch
};

// The meta text is UTF-8 and line-based, one record per line, tokens separated by single spaces:
//   pymfn-emu-om 1
//   precision f16|f32
//   precision_mode <atc precision mode it stands for>     (informational)
//   input <name> <dtype> <format> <d0,d1,...>              (one per model input, IR order)
//   output <name> <dtype> <format> <d0,d1,...>             (one per model output, IR order)
//   dynamic_batch <b1,b2,...>                               (optional; requires -1 as first input dim)
// Unknown keys are an error (a newer writer must bump the version).
struct EmulatorMeta {
  int version = 1;
  std::string precision = "f32";
  std::string precision_mode;
  std::vector<EmulatorTensor> inputs;
  std::vector<EmulatorTensor> outputs;
  std::vector<uint64_t> dynamic_batch;
};

bool parse_emulator_meta(const std::string& text, EmulatorMeta* out, std::string* error);

// Views into a complete emulator om file image (header + payload). Pointers alias `data`.
struct EmulatorPayloadView {
  OmHeader header;
  std::string meta_text;
  const uint8_t* xml = nullptr;
  size_t xml_len = 0;
  const uint8_t* weights = nullptr;
  size_t weights_len = 0;
};

// Splits an emulator om image. Codes tell the emulator which ACL error to return:
// 1 = not an om file (bad header), 2 = om but not an emulator payload or malformed payload.
bool split_emulator_om(const uint8_t* data, size_t size, EmulatorPayloadView* out, std::string* error,
                       int* code);

}  // namespace om
}  // namespace pymfn
