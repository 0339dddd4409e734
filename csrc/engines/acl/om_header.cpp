// om header and emulator payload: see om_header.h for the layout and why there are two API levels.
#include "engines/acl/om_header.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/errors.h"

namespace pymfn {
namespace om {
namespace {

uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t get_u64(const uint8_t* p) {
  return static_cast<uint64_t>(get_u32(p)) | (static_cast<uint64_t>(get_u32(p + 4)) << 32);
}

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// A NUL-terminated (or full-width) char field.
std::string get_cstr(const uint8_t* p, size_t width) {
  size_t n = 0;
  while (n < width && p[n] != 0) ++n;
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

// A whole decimal integer: optional sign, then 1..18 digits (no spaces, no overflow possible).
bool parse_int64(const std::string& s, int64_t* v) {
  const size_t start = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (s.size() == start || s.size() - start > 18) return false;
  for (size_t i = start; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  *v = std::strtoll(s.c_str(), nullptr, 10);
  return true;
}

// Offset of the first byte that breaks UTF-8 (overlong forms and surrogates included), or npos.
size_t invalid_utf8_at(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: number of continuation bytes n and the code point bits it carries.
    const size_t n = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
    if (n == 0) return i;
    uint32_t cp = c & (0x7Fu >> (n + 1));
    if (i + n >= s.size()) return i;  // the sequence runs past the end
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return std::string::npos;
}

// Bytes per element of a meta dtype; 0 for an unknown one.
uint64_t meta_dtype_bytes(const std::string& d) {
  if (d == "float32" || d == "int32") return 4;
  if (d == "float16") return 2;
  if (d == "uint8") return 1;
  if (d == "int64") return 8;
  return 0;
}

}  // namespace

std::string printable(const std::string& raw) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    if (out.size() >= 80) return out + "...";
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool OmHeader::is_emulator() const {
  const size_t n = std::strlen(kEmulatorMarker);
  return std::memcmp(userdefineinfo.data(), kEmulatorMarker, n) == 0;
}

void OmHeader::mark_emulator() {
  userdefineinfo.fill(0);
  std::memcpy(userdefineinfo.data(), kEmulatorMarker, std::strlen(kEmulatorMarker));
}

bool parse_header(const uint8_t* data, size_t size, OmHeader* out, std::string* error) {
  if (size < kHeaderSize) {
    *error = "file is " + std::to_string(size) + " bytes, shorter than the 256-byte om header";
    return false;
  }
  OmHeader h;
  h.magic = get_u32(data);
  if (h.magic != kMagic) {
    std::ostringstream os;
    os << "bad magic 0x" << std::hex << h.magic << " (an om file starts with \"IMOD\", magic 0x444F4D49)";
    *error = os.str();
    return false;
  }
  h.headsize = get_u32(data + 4);
  if (h.headsize != kHeaderSize) {
    *error = "header size field is " + std::to_string(h.headsize) + ", expected 256";
    return false;
  }
  h.version = get_u32(data + 8);
  std::memcpy(h.checksum.data(), data + 12, 64);
  h.length = get_u32(data + 76);
  h.is_encrypt = data[80];
  h.is_checksum = data[81];
  h.modeltype = data[82];
  h.genmode = data[83];
  h.name = get_cstr(data + 84, 32);
  h.ops = get_u32(data + 116);
  std::memcpy(h.userdefineinfo.data(), data + 120, 32);
  h.om_ir_version = get_u32(data + 152);
  h.model_num = get_u32(data + 156);
  h.platform_version = get_cstr(data + 160, 20);
  h.platform_type = data[180];
  *out = h;
  return true;
}

bool encode_header(const OmHeader& h, std::vector<uint8_t>* out, std::string* error) {
  if (h.name.size() > 31) {
    *error = "om name '" + h.name + "' is longer than 31 bytes";
    return false;
  }
  if (h.platform_version.size() > 19) {
    *error = "platform_version '" + h.platform_version + "' is longer than 19 bytes";
    return false;
  }
  std::vector<uint8_t> b(kHeaderSize, 0);
  put_u32(&b[0], h.magic);
  put_u32(&b[4], h.headsize);
  put_u32(&b[8], h.version);
  std::memcpy(&b[12], h.checksum.data(), 64);
  put_u32(&b[76], h.length);
  b[80] = h.is_encrypt;
  b[81] = h.is_checksum;
  b[82] = h.modeltype;
  b[83] = h.genmode;
  std::memcpy(&b[84], h.name.data(), h.name.size());
  put_u32(&b[116], h.ops);
  std::memcpy(&b[120], h.userdefineinfo.data(), 32);
  put_u32(&b[152], h.om_ir_version);
  put_u32(&b[156], h.model_num);
  std::memcpy(&b[160], h.platform_version.data(), h.platform_version.size());
  b[180] = h.platform_type;
  *out = std::move(b);
  return true;
}

OmHeader read_om_header(const std::string& path) {
  // O_NONBLOCK: a FIFO given as the model must fail the regular-file check below, not block the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    throw InputError(path, std::string("cannot open om file: ") + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw InputError(path, std::string("cannot stat om file: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw InputError(path, "not a regular file (expected an Ascend .om model)");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(file_size, kHeaderSize)));
  size_t got = 0;
  while (got < head.size()) {
    const ssize_t n = ::pread(fd, head.data() + got, head.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(path, std::string("cannot read the om header: ") + std::strerror(errno));
    if (n == 0) break;  // shrank since fstat: parse_header reports the short header
    got += static_cast<size_t>(n);
  }
  OmHeader h;
  std::string err;
  if (!parse_header(head.data(), got, &h, &err)) throw FormatError(path, "not an Ascend om file: " + err);
  if (h.is_emulator() && static_cast<uint64_t>(h.length) != file_size - kHeaderSize)
    throw FormatError(path, "emulator om header says " + std::to_string(h.length) + " payload bytes but " +
                                std::to_string(file_size - kHeaderSize) + " follow the header (truncated copy?)");
  return h;
}

bool parse_emulator_meta(const std::string& text, EmulatorMeta* out, std::string* error) {
  // Names in the meta become tensor names callers print and convert to text: UTF-8 only.
  const size_t bad = invalid_utf8_at(text);
  if (bad != std::string::npos) {
    *error = "meta is not UTF-8 text (byte " + std::to_string(bad) + ")";
    return false;
  }
  EmulatorMeta m;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  bool saw_version = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    const auto tok = split(line, ' ');
    const std::string where = "meta line " + std::to_string(lineno) + " ('" + printable(line) + "'): ";
    const std::string& key = tok[0];
    if (key == "pymfn-emu-om") {
      if (tok.size() != 2 || tok[1] != "1") {
        *error = where + "unsupported emulator payload version (this emulator reads version 1)";
        return false;
      }
      saw_version = true;
    } else if (key == "precision") {
      if (tok.size() != 2 || (tok[1] != "f32" && tok[1] != "f16")) {
        *error = where + "precision must be f32 or f16";
        return false;
      }
      m.precision = tok[1];
    } else if (key == "precision_mode") {
      if (tok.size() != 2) {
        *error = where + "expected 'precision_mode <mode>'";
        return false;
      }
      m.precision_mode = tok[1];
    } else if (key == "input" || key == "output") {
      if (tok.size() != 5) {
        *error = where + "expected '" + key + " <name> <dtype> <format> <d0,d1,...>'";
        return false;
      }
      EmulatorTensor t;
      t.name = tok[1];
      t.dtype = tok[2];
      t.format = tok[3];
      if (meta_dtype_bytes(t.dtype) == 0) {
        *error = where + "unknown dtype '" + printable(t.dtype) + "'";
        return false;
      }
      if (t.format != "NHWC" && t.format != "NCHW" && t.format != "ND") {
        *error = where + "format must be NHWC, NCHW or ND";
        return false;
      }
      if (t.name.empty() || t.name.size() >= 128) {
        *error = where + "tensor name must be 1..127 bytes";
        return false;
      }
      for (const auto& d : split(tok[4], ',')) {
        int64_t v = 0;
        if (!parse_int64(d, &v) || v == 0 || v < -1) {
          *error = where + "dims must be positive integers (or -1 first)";
          return false;
        }
        t.dims.push_back(v);
      }
      for (size_t i = 1; i < t.dims.size(); ++i)
        if (t.dims[i] < 0) {
          *error = where + "only the first (batch) dim may be -1";
          return false;
        }
      if (t.dims.size() > kMaxMetaDims) {
        *error = where + "at most " + std::to_string(kMaxMetaDims) + " dims";
        return false;
      }
      // Bounded so every size the emulator derives from the dims (x the largest batch) fits 64 bits.
      uint64_t bytes = meta_dtype_bytes(t.dtype);
      for (int64_t d : t.dims) {
        const uint64_t factor = d > 0 ? static_cast<uint64_t>(d) : kMaxDynamicBatch;
        bytes = factor > kMaxTensorBytes / bytes ? kMaxTensorBytes + 1 : bytes * factor;
        if (bytes > kMaxTensorBytes) {
          *error = where + "a tensor of dims " + printable(tok[4]) + " would exceed " + std::to_string(kMaxTensorBytes) + " bytes";
          return false;
        }
      }
      (key == "input" ? m.inputs : m.outputs).push_back(std::move(t));
    } else if (key == "dynamic_batch") {
      if (!m.dynamic_batch.empty()) {
        *error = where + "a second dynamic_batch line";
        return false;
      }
      if (tok.size() != 2) {
        *error = where + "expected 'dynamic_batch <b1,b2,...>'";
        return false;
      }
      for (const auto& d : split(tok[1], ',')) {
        int64_t v = 0;
        if (!parse_int64(d, &v) || v < 1 || v > static_cast<int64_t>(kMaxDynamicBatch)) {
          *error = where + "batch sizes must be integers 1.." + std::to_string(kMaxDynamicBatch);
          return false;
        }
        m.dynamic_batch.push_back(static_cast<uint64_t>(v));
      }
    } else {
      *error = where + "unknown key '" + printable(key) + "'";
      return false;
    }
  }
  if (!saw_version) {
    *error = "meta has no 'pymfn-emu-om 1' line";
    return false;
  }
  if (m.inputs.empty() || m.outputs.empty()) {
    *error = "meta must declare at least one input and one output";
    return false;
  }
  const bool dynamic = !m.dynamic_batch.empty();
  if (dynamic && (m.dynamic_batch.size() < 2 || m.dynamic_batch.size() > 100)) {
    *error = "dynamic_batch must list 2..100 sizes";
    return false;
  }
  for (const auto* list : {&m.inputs, &m.outputs})
    for (const auto& t : *list)
      if (t.dims.empty() || (t.dims[0] == -1) != dynamic) {
        *error = "tensor '" + printable(t.name) + "': the first dim must be -1 exactly when dynamic_batch is given";
        return false;
      }
  *out = std::move(m);
  return true;
}

bool split_emulator_om(const uint8_t* data, size_t size, EmulatorPayloadView* out, std::string* error, int* code) {
  EmulatorPayloadView v;
  if (!parse_header(data, size, &v.header, error)) {
    *code = 1;
    return false;
  }
  *code = 2;
  if (!v.header.is_emulator()) {
    *error = "om file is not an emulator payload (userdefineinfo lacks the '" + std::string(kEmulatorMarker) +
             "' marker): the emulator cannot execute real Ascend om files";
    return false;
  }
  const size_t payload = size - kHeaderSize;
  if (static_cast<uint64_t>(v.header.length) != payload) {
    *error = "om header says " + std::to_string(v.header.length) + " payload bytes but " + std::to_string(payload) +
             " follow the header";
    return false;
  }
  const uint8_t* p = data + kHeaderSize;
  if (payload < kPayloadPrefix || std::memcmp(p, kPayloadMagic, 8) != 0) {
    *error = "emulator payload does not start with 'PMFNEMU1'";
    return false;
  }
  const uint64_t meta_len = get_u64(p + 8), xml_len = get_u64(p + 16), bin_len = get_u64(p + 24);
  const uint64_t avail = payload - kPayloadPrefix;
  if (meta_len > avail || xml_len > avail - meta_len || bin_len != avail - meta_len - xml_len) {
    *error = "emulator payload section sizes (meta " + std::to_string(meta_len) + ", xml " + std::to_string(xml_len) +
             ", weights " + std::to_string(bin_len) + ") do not add up to the " + std::to_string(avail) +
             " bytes present";
    return false;
  }
  const uint8_t* q = p + kPayloadPrefix;
  v.meta_text.assign(reinterpret_cast<const char*>(q), meta_len);
  v.xml = q + meta_len;
  v.xml_len = xml_len;
  v.weights = v.xml + xml_len;
  v.weights_len = bin_len;
  *out = std::move(v);
  return true;
}

}  // namespace om
}  // namespace pymfn
