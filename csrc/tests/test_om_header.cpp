// The om header (256 bytes at the start of every Ascend .om) and the emulator payload behind it:
// byte layout, validation, and the errors a bad file gets.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engines/acl/om_header.h"
#include "core/errors.h"
#include "tests/check.h"
#include "tests/temp_dir.h"

namespace om = pymfn::om;
using Bytes = std::vector<unsigned char>;

namespace {

uint32_t u32_at(const Bytes& b, size_t off) {
  return static_cast<uint32_t>(b[off]) | (static_cast<uint32_t>(b[off + 1]) << 8) |
         (static_cast<uint32_t>(b[off + 2]) << 16) | (static_cast<uint32_t>(b[off + 3]) << 24);
}

void put_u64(Bytes* b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*b)[off + i] = static_cast<unsigned char>(v >> (8 * i));
}

Bytes encode(const om::OmHeader& h) {
  Bytes out;
  std::string err;
  if (!om::encode_header(h, &out, &err)) throw std::runtime_error("encode_header: " + err);
  return out;
}

const char* kMeta =
    "pymfn-emu-om 1\n"
    "precision f16\n"
    "precision_mode allow_fp32_to_fp16\n"
    "input data float32 NHWC 1,112,112,3\n"
    "output embedding float32 ND 1,128\n";

// A complete emulator om image: header (marked, length = payload) + PMFNEMU1 prefix + sections.
Bytes emulator_image(const std::string& meta, const std::string& xml, const std::string& weights) {
  Bytes payload(om::kPayloadPrefix, 0);
  std::memcpy(payload.data(), om::kPayloadMagic, 8);
  put_u64(&payload, 8, meta.size());
  put_u64(&payload, 16, xml.size());
  put_u64(&payload, 24, weights.size());
  for (const std::string* s : {&meta, &xml, &weights}) payload.insert(payload.end(), s->begin(), s->end());
  om::OmHeader h;
  h.name = "mfn";
  h.mark_emulator();
  h.length = static_cast<uint32_t>(payload.size());
  Bytes image = encode(h);
  image.insert(image.end(), payload.begin(), payload.end());
  return image;
}

std::string meta_error(const std::string& text) {
  om::EmulatorMeta m;
  std::string err;
  if (om::parse_emulator_meta(text, &m, &err)) return "";
  return err.empty() ? "(refused without a message)" : err;
}

}  // namespace

TEST(encode_writes_the_documented_layout_and_parse_reads_it_back) {
  om::OmHeader h;
  h.version = 7;
  for (size_t i = 0; i < h.checksum.size(); ++i) h.checksum[i] = static_cast<uint8_t>(i + 1);
  h.length = 0x01020304u;
  h.is_encrypt = 1;
  h.is_checksum = 2;
  h.modeltype = 3;
  h.genmode = 4;
  h.name = "mobilefacenet";
  h.ops = 99;
  h.om_ir_version = 5;
  h.model_num = 2;
  h.platform_version = "Ascend310";
  h.platform_type = 6;
  h.mark_emulator();
  const Bytes b = encode(h);
  CHECK_EQ(b.size(), om::kHeaderSize);
  CHECK_EQ(std::string(b.begin(), b.begin() + 4), std::string("IMOD"));  // magic 0x444F4D49, little-endian
  CHECK_EQ(u32_at(b, 4), uint32_t{256});
  CHECK_EQ(u32_at(b, 8), uint32_t{7});
  CHECK_EQ(static_cast<int>(b[12]), 1);
  CHECK_EQ(static_cast<int>(b[75]), 64);
  CHECK_EQ(u32_at(b, 76), uint32_t{0x01020304u});
  CHECK_EQ(static_cast<int>(b[80]) * 1000 + b[81] * 100 + b[82] * 10 + b[83], 1234);
  CHECK_EQ(std::string(reinterpret_cast<const char*>(&b[84])), std::string("mobilefacenet"));
  CHECK_EQ(u32_at(b, 116), uint32_t{99});
  CHECK_EQ(std::string(reinterpret_cast<const char*>(&b[120])), std::string(om::kEmulatorMarker));
  CHECK_EQ(u32_at(b, 152), uint32_t{5});
  CHECK_EQ(u32_at(b, 156), uint32_t{2});
  CHECK_EQ(std::string(reinterpret_cast<const char*>(&b[160])), std::string("Ascend310"));
  CHECK_EQ(static_cast<int>(b[180]), 6);
  for (size_t i = 181; i < b.size(); ++i) CHECK_EQ(static_cast<int>(b[i]), 0);

  om::OmHeader back;
  std::string err;
  CHECK(om::parse_header(b.data(), b.size(), &back, &err));
  CHECK_EQ(back.version, uint32_t{7});
  CHECK(back.checksum == h.checksum);
  CHECK_EQ(back.length, h.length);
  CHECK_EQ(back.genmode, uint8_t{4});
  CHECK_EQ(back.name, h.name);
  CHECK_EQ(back.ops, uint32_t{99});
  CHECK_EQ(back.om_ir_version, uint32_t{5});
  CHECK_EQ(back.model_num, uint32_t{2});
  CHECK_EQ(back.platform_version, h.platform_version);
  CHECK_EQ(back.platform_type, uint8_t{6});
  CHECK(back.is_emulator());
}

TEST(full_width_text_fields_are_not_read_past) {
  om::OmHeader h;
  h.name = std::string(31, 'n');
  h.platform_version = std::string(19, 'p');
  Bytes b = encode(h);
  std::memset(&b[84], 'x', 32);  // no NUL inside the 32-byte name field
  om::OmHeader back;
  std::string err;
  CHECK(om::parse_header(b.data(), b.size(), &back, &err));
  CHECK_EQ(back.name, std::string(32, 'x'));
  CHECK_EQ(back.platform_version, std::string(19, 'p'));
  CHECK(!back.is_emulator());
}

TEST(encode_refuses_text_that_does_not_fit) {
  Bytes out;
  std::string err;
  om::OmHeader h;
  h.name = std::string(32, 'n');
  CHECK(!om::encode_header(h, &out, &err));
  CHECK(err.find("longer than 31") != std::string::npos);
  h.name = "ok";
  h.platform_version = std::string(20, 'p');
  CHECK(!om::encode_header(h, &out, &err));
  CHECK(err.find("longer than 19") != std::string::npos);
}

TEST(parse_refuses_short_input_bad_magic_and_bad_header_size) {
  Bytes b = encode(om::OmHeader{});
  om::OmHeader out;
  std::string err;
  CHECK(!om::parse_header(b.data(), 255, &out, &err));
  CHECK(err.find("255 bytes") != std::string::npos);
  Bytes bad = b;
  bad[0] = 'X';
  CHECK(!om::parse_header(bad.data(), bad.size(), &out, &err));
  CHECK(err.find("bad magic") != std::string::npos);
  bad = b;
  bad[4] = 128;
  bad[5] = 0;
  CHECK(!om::parse_header(bad.data(), bad.size(), &out, &err));
  CHECK(err.find("header size field is 128") != std::string::npos);
}

TEST(printable_escapes_every_non_printable_byte) {
  CHECK_EQ(om::printable(std::string("ab\x01\\\xff", 5)), std::string("ab\\x01\\x5c\\xff"));
  const std::string long_text = om::printable(std::string(200, 'a'));
  CHECK_EQ(long_text, std::string(80, 'a') + "...");
}

TEST(read_om_header_names_the_file_in_every_error) {
  pymfn_test::TempDir dir;
  const std::string missing = dir.file("missing.om");
  CHECK_THROWS(om::read_om_header(missing), pymfn::InputError, missing + ": cannot open om file");
  CHECK_THROWS(om::read_om_header(dir.path()), pymfn::InputError, "not a regular file");
  const std::string small = dir.write("small.om", Bytes(100, 0));
  CHECK_THROWS(om::read_om_header(small), pymfn::FormatError, small + ": not an Ascend om file: file is 100 bytes");
  const std::string text = dir.write("text.om", Bytes(300, 'a'));
  CHECK_THROWS(om::read_om_header(text), pymfn::FormatError, "bad magic");
  try {
    om::read_om_header(text);
  } catch (const pymfn::FormatError& e) {
    CHECK_EQ(e.path(), text);
  }
}

TEST(read_om_header_catches_a_truncated_emulator_file_only) {
  pymfn_test::TempDir dir;
  Bytes image = emulator_image(kMeta, "<xml/>", "WEIGHTS");
  const std::string whole = dir.write("whole.om", image);
  CHECK(om::read_om_header(whole).is_emulator());
  image.pop_back();
  const std::string cut = dir.write("cut.om", image);
  CHECK_THROWS(om::read_om_header(cut), pymfn::FormatError, "truncated copy");
  // A real om's length is not the emulator's business: any length is accepted.
  om::OmHeader real;
  real.length = 12345;
  Bytes real_image = encode(real);
  real_image.resize(real_image.size() + 10, 0);
  CHECK(!om::read_om_header(dir.write("real.om", real_image)).is_emulator());
}

TEST(emulator_meta_parses_tensors_and_dynamic_batch) {
  om::EmulatorMeta m;
  std::string err;
  CHECK(om::parse_emulator_meta(kMeta, &m, &err));
  CHECK_EQ(m.precision, std::string("f16"));
  CHECK_EQ(m.precision_mode, std::string("allow_fp32_to_fp16"));
  CHECK_EQ(m.inputs.size(), size_t{1});
  CHECK_EQ(m.outputs.size(), size_t{1});
  CHECK_EQ(m.inputs[0].name, std::string("data"));
  CHECK_EQ(m.inputs[0].format, std::string("NHWC"));
  CHECK(m.inputs[0].dims == (std::vector<int64_t>{1, 112, 112, 3}));
  CHECK(m.outputs[0].dims == (std::vector<int64_t>{1, 128}));
  CHECK(m.dynamic_batch.empty());

  const std::string dynamic =
      "pymfn-emu-om 1\ninput x uint8 NCHW -1,3,8,8\noutput y float16 ND -1,4\ndynamic_batch 1,2,8\n";
  CHECK(om::parse_emulator_meta(dynamic, &m, &err));
  CHECK(m.dynamic_batch == (std::vector<uint64_t>{1, 2, 8}));
  CHECK_EQ(m.inputs[0].dims[0], int64_t{-1});
  CHECK_EQ(m.precision, std::string("f32"));  // the default when no precision line is given
}

TEST(emulator_meta_refuses_malformed_text_with_a_reason) {
  const std::string head = "pymfn-emu-om 1\n";
  const std::string io = "input x float32 ND 1,4\noutput y float32 ND 1,2\n";
  CHECK(meta_error(io).find("no 'pymfn-emu-om 1'") != std::string::npos);
  CHECK(meta_error("pymfn-emu-om 2\n" + io).find("unsupported emulator payload version") != std::string::npos);
  CHECK(meta_error(head + io + "frobnicate 1\n").find("unknown key 'frobnicate'") != std::string::npos);
  CHECK(meta_error(head + "input x float32 ND\n" + "output y float32 ND 1,2\n").find("expected 'input") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float64 ND 1,4\noutput y float32 ND 1,2\n").find("unknown dtype") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 NC1HWC0 1,4\noutput y float32 ND 1,2\n").find("format") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 ND 1,0\noutput y float32 ND 1,2\n").find("dims must be positive") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 ND 1,-1\noutput y float32 ND 1,2\n").find("only the first") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 ND 1,1,1,1,1,1,1,1,1\noutput y float32 ND 1,2\n").find("at most 8") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 ND 1,1048576,1048576\noutput y float32 ND 1,2\n").find("would exceed") !=
        std::string::npos);
  CHECK(meta_error(head + "input x float32 ND 1,4\n").find("at least one input and one output") != std::string::npos);
  // dynamic batch: -1 first exactly when a dynamic_batch line is given, 2..100 sizes of 1..2048.
  CHECK(meta_error(head + "input x float32 ND -1,4\noutput y float32 ND -1,2\n").find("first dim must be -1") !=
        std::string::npos);
  CHECK(meta_error(head + io + "dynamic_batch 1,2\n").find("first dim must be -1") != std::string::npos);
  CHECK(meta_error(head + "input x float32 ND -1,4\noutput y float32 ND -1,2\ndynamic_batch 4\n")
            .find("2..100 sizes") != std::string::npos);
  CHECK(meta_error(head + "input x float32 ND -1,4\noutput y float32 ND -1,2\ndynamic_batch 1,4096\n")
            .find("1..2048") != std::string::npos);
  CHECK(meta_error(head + "input x\xff float32 ND 1,4\noutput y float32 ND 1,2\n").find("not UTF-8") !=
        std::string::npos);
}

TEST(split_emulator_om_gives_views_of_each_section) {
  const std::string xml = "<net/>", weights = std::string("\x00\x01\x02", 3);
  const Bytes image = emulator_image(kMeta, xml, weights);
  om::EmulatorPayloadView v;
  std::string err;
  int code = -1;
  CHECK(om::split_emulator_om(image.data(), image.size(), &v, &err, &code));
  CHECK_EQ(v.meta_text, std::string(kMeta));
  CHECK_EQ(std::string(reinterpret_cast<const char*>(v.xml), v.xml_len), xml);
  CHECK_EQ(std::string(reinterpret_cast<const char*>(v.weights), v.weights_len), weights);
  CHECK(v.weights + v.weights_len == image.data() + image.size());
}

TEST(split_emulator_om_tells_a_bad_header_from_a_bad_payload) {
  const Bytes good = emulator_image(kMeta, "<net/>", "W");
  om::EmulatorPayloadView v;
  std::string err;
  int code = 0;
  Bytes b = good;
  b[1] = 'X';  // magic
  CHECK(!om::split_emulator_om(b.data(), b.size(), &v, &err, &code));
  CHECK_EQ(code, 1);

  om::OmHeader real;
  real.length = 4;
  b = encode(real);
  b.resize(b.size() + 4, 0);
  CHECK(!om::split_emulator_om(b.data(), b.size(), &v, &err, &code));
  CHECK_EQ(code, 2);
  CHECK(err.find("not an emulator payload") != std::string::npos);

  b = good;
  b[om::kHeaderSize] = 'X';  // payload magic
  CHECK(!om::split_emulator_om(b.data(), b.size(), &v, &err, &code));
  CHECK_EQ(code, 2);
  CHECK(err.find("PMFNEMU1") != std::string::npos);

  b = good;
  put_u64(&b, om::kHeaderSize + 16, 1000);  // xml_len past the end
  CHECK(!om::split_emulator_om(b.data(), b.size(), &v, &err, &code));
  CHECK_EQ(code, 2);
  CHECK(err.find("do not add up") != std::string::npos);

  b = good;
  b.push_back(0);  // one byte more than the header's length says
  CHECK(!om::split_emulator_om(b.data(), b.size(), &v, &err, &code));
  CHECK_EQ(code, 2);
  CHECK(err.find("payload bytes") != std::string::npos);
}
