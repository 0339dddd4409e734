// The packed sample file (core/packed_format.h): header layout and validation, PackedDataset over a real
// file (zero-copy views, the padded last batch), and ArrayDataset, the in-memory source.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/packed_format.h"
#include "data/array_dataset.h"
#include "data/packed_dataset.h"
#include "tests/check.h"
#include "tests/temp_dir.h"

using pymfn::PackedHeader;
using Bytes = std::vector<unsigned char>;

static_assert(offsetof(PackedHeader, magic) == 0, "packed layout");
static_assert(offsetof(PackedHeader, version) == 8, "packed layout");
static_assert(offsetof(PackedHeader, header_bytes) == 12, "packed layout");
static_assert(offsetof(PackedHeader, dtype) == 16, "packed layout");
static_assert(offsetof(PackedHeader, ndim) == 20, "packed layout");
static_assert(offsetof(PackedHeader, count) == 24, "packed layout");
static_assert(offsetof(PackedHeader, sample_bytes) == 32, "packed layout");
static_assert(offsetof(PackedHeader, dims) == 40, "packed layout");

namespace {

void put(Bytes* b, size_t off, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) (*b)[off + i] = static_cast<unsigned char>(v >> (8 * i));
}

struct Layout {
  uint32_t version = 1, header_bytes = 4096, dtype = 0, ndim = 2;
  uint64_t count = 5, sample_bytes = 24;
  int64_t dims[8] = {2, 3, 0, 0, 0, 0, 0, 0};
};

// A packed file written byte by byte from the documented offsets (little-endian), independent of the
// PackedHeader struct; samples are float32 with sample i element j = i * 100 + j.
Bytes packed_file(const Layout& l, size_t samples_written) {
  Bytes b(l.header_bytes, 0);
  std::memcpy(b.data(), "PYMFNPK\0", 8);
  put(&b, 8, l.version, 4);
  put(&b, 12, l.header_bytes, 4);
  put(&b, 16, l.dtype, 4);
  put(&b, 20, l.ndim, 4);
  put(&b, 24, l.count, 8);
  put(&b, 32, l.sample_bytes, 8);
  for (int i = 0; i < 8; ++i) put(&b, 40 + 8 * i, static_cast<uint64_t>(l.dims[i]), 8);
  const size_t floats = static_cast<size_t>(l.sample_bytes) / 4;
  for (size_t i = 0; i < samples_written; ++i)
    for (size_t j = 0; j < floats; ++j) {
      const float v = static_cast<float>(i * 100 + j);
      unsigned char raw[4];
      std::memcpy(raw, &v, 4);
      b.insert(b.end(), raw, raw + 4);
    }
  return b;
}

PackedHeader header_of(const Bytes& file) {
  PackedHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  return h;
}

float float_at(const void* base, size_t index) {
  float v;
  std::memcpy(&v, static_cast<const unsigned char*>(base) + 4 * index, 4);
  return v;
}

}  // namespace

TEST(a_valid_file_is_read_in_batches_each_copied_once) {
  pymfn_test::TempDir dir;
  const Layout l;
  const std::string path = dir.write("five.pack", packed_file(l, 5));
  pymfn::PackedDataset ds(path);
  CHECK_EQ(ds.sample_count(), size_t{5});
  CHECK_EQ(ds.sample_bytes(), size_t{24});
  CHECK(ds.dtype() == pymfn::DType::kFloat32);
  CHECK(ds.sample_shape() == (std::vector<int64_t>{2, 3}));
  CHECK_EQ(ds.file_bytes(), uint64_t{4096 + 5 * 24});
  CHECK_EQ(ds.header_bytes(), uint32_t{4096});
  // A pack is never handed out as a view into its mapping (a truncated file would raise SIGBUS in the engine).
  CHECK(ds.contiguous_data() == nullptr);
  const pymfn::SampleSpec spec = ds.sample_spec();
  CHECK_EQ(spec.origin, "packed " + path);
  CHECK_EQ(spec.path, path);

  auto reader = ds.reader(2, 0);
  CHECK_EQ(reader->num_batches(), size_t{3});
  CHECK_EQ(reader->batch_size(), size_t{2});
  for (int pass = 0; pass < 2; ++pass) {
    pymfn::BatchView v;
    for (size_t b = 0; b < 2; ++b) {
      CHECK(reader->next(&v));
      CHECK_EQ(v.batch_rows, size_t{2});
      CHECK_EQ(v.valid_rows, size_t{2});
      CHECK_EQ(v.first_sample, 2 * b);
      CHECK_EQ(v.batch_index, b);
      CHECK_EQ(float_at(v.data, 0), static_cast<float>(200 * b));        // sample 2b, element 0
      CHECK_EQ(float_at(v.data, 6), static_cast<float>(200 * b + 100));  // sample 2b+1, element 0
    }
    CHECK(reader->next(&v));
    CHECK_EQ(v.valid_rows, size_t{1});
    CHECK_EQ(v.batch_rows, size_t{2});
    CHECK_EQ(v.first_sample, size_t{4});
    CHECK_EQ(float_at(v.data, 0), 400.0f);
    CHECK_EQ(float_at(v.data, 5), 405.0f);
    for (size_t k = 6; k < 12; ++k) CHECK_EQ(float_at(v.data, k), 0.0f);  // the padding row is zeros
    CHECK(!reader->next(&v));
    reader->rewind();
  }
  const pymfn::ReaderStats st = reader->stats();
  CHECK_EQ(st.batches, uint64_t{6});
  CHECK_EQ(st.padded_batches, uint64_t{2});
  CHECK_EQ(st.bytes_copied, uint64_t{2 * 5 * 24});  // every real row, once per pass
}

TEST(a_larger_multiple_of_4096_header_is_accepted) {
  pymfn_test::TempDir dir;
  Layout l;
  l.header_bytes = 8192;
  pymfn::PackedDataset ds(dir.write("big-header.pack", packed_file(l, 5)));
  auto reader = ds.reader(5, 0);
  pymfn::BatchView v;
  CHECK(reader->next(&v));
  CHECK_EQ(float_at(v.data, 0), 0.0f);
  CHECK_EQ(float_at(v.data, 29), 405.0f);
}

TEST(validate_refuses_each_malformed_field) {
  const Layout good;
  const Bytes file = packed_file(good, 5);
  const uint64_t size = file.size();
  pymfn::validate_packed_header(header_of(file), size, "x.pack");  // the baseline is valid

  auto refused = [&](void (*mutate)(PackedHeader*), uint64_t file_size, const std::string& needle) {
    PackedHeader h = header_of(file);
    mutate(&h);
    try {
      pymfn::validate_packed_header(h, file_size, "x.pack");
      pymfn_test::fail(__FILE__, __LINE__, "accepted a header with a malformed field: " + needle);
    } catch (const pymfn::FormatError& e) {
      CHECK_EQ(e.path(), std::string("x.pack"));
      const std::string msg = e.what();
      CHECK_EQ(msg.rfind("x.pack: ", 0), size_t{0});
      if (msg.find(needle) == std::string::npos) pymfn_test::fail(__FILE__, __LINE__, "no \"" + needle + "\" in: " + msg);
    }
  };
  refused([](PackedHeader* h) { h->magic[0] = 'Q'; }, size, "bad magic");
  refused([](PackedHeader* h) { h->version = 2; }, size, "unsupported packed format version 2");
  refused([](PackedHeader* h) { h->header_bytes = 100; }, size, "header_bytes 100 is invalid");
  refused([](PackedHeader* h) { h->header_bytes = 6000; }, size, "header_bytes 6000 is invalid");
  refused([](PackedHeader* h) { h->dtype = 9; }, size, "unknown dtype code 9");
  refused([](PackedHeader* h) { h->ndim = 0; }, size, "ndim 0 is out of range");
  refused([](PackedHeader* h) { h->ndim = 9; }, size, "ndim 9 is out of range");
  refused([](PackedHeader* h) { h->dims[1] = 0; }, size, "dims[1] = 0 is not positive");
  refused([](PackedHeader* h) { h->dims[1] = -3; }, size, "dims[1] = -3 is not positive");
  refused([](PackedHeader* h) { h->dims[4] = 7; }, size, "dims[4] = 7 past ndim 2 must be 0");
  refused([](PackedHeader* h) { h->sample_bytes = 12; }, size, "sample_bytes 12 disagrees with dims x float32 = 24");
  refused([](PackedHeader* h) { h->dtype = 1; }, size, "disagrees with dims x float16 = 12");
  refused([](PackedHeader* h) { h->count = UINT64_MAX / 2; }, size, "overflows the file size");
  refused([](PackedHeader* h) { h->dims[0] = INT64_MAX; }, size, "overflows 64 bits");
  refused([](PackedHeader*) {}, size - 1, "the file is truncated");
  refused([](PackedHeader*) {}, size + 1, "trailing bytes after the last sample");
}

TEST(packed_dataset_errors_name_the_file) {
  pymfn_test::TempDir dir;
  const std::string missing = dir.file("none.pack");
  CHECK_THROWS(pymfn::PackedDataset{missing}, pymfn::InputError, missing + ": cannot open packed file");
  CHECK_THROWS(pymfn::PackedDataset{dir.path()}, pymfn::InputError, "not a regular file");
  const std::string tiny = dir.write("tiny.pack", Bytes(50, 0));
  CHECK_THROWS(pymfn::PackedDataset{tiny}, pymfn::FormatError, "too short for the 104-byte packed header");
  Layout empty;
  empty.count = 0;
  const std::string none = dir.write("empty.pack", packed_file(empty, 0));
  CHECK_THROWS(pymfn::PackedDataset{none}, pymfn::FormatError, "contains no samples");
  const std::string cut = dir.write("cut.pack", packed_file(Layout{}, 4));
  CHECK_THROWS(pymfn::PackedDataset{cut}, pymfn::FormatError, "truncated");
}

TEST(packed_dataset_expect_names_both_sides) {
  pymfn_test::TempDir dir;
  pymfn::PackedDataset ds(dir.write("five.pack", packed_file(Layout{}, 5)));
  const pymfn::DType f16 = pymfn::DType::kFloat16, f32 = pymfn::DType::kFloat32;
  ds.expect(24, &f32, {2, 3});  // what the file holds: no throw
  CHECK_THROWS(ds.expect(0, &f16, {}), pymfn::ShapeMismatch, "packed samples are float32 but the model expects float16");
  CHECK_THROWS(ds.expect(0, nullptr, {3, 2}), pymfn::ShapeMismatch, "shape [2, 3] but the model expects [3, 2]");
  CHECK_THROWS(ds.expect(48, nullptr, {}), pymfn::ShapeMismatch, "24 bytes but the model expects 48 bytes");
}

TEST(array_dataset_serves_views_of_caller_memory) {
  auto values = std::make_shared<std::vector<float>>();
  for (int i = 0; i < 7 * 4; ++i) values->push_back(static_cast<float>(i));
  pymfn::ArrayDataset ds(values, values->data(), 7, pymfn::DType::kFloat32, {4}, "test array");
  CHECK_EQ(ds.sample_bytes(), size_t{16});
  CHECK_EQ(ds.sample_spec().origin, std::string("test array"));
  auto reader = ds.reader(3, 0);
  CHECK_EQ(reader->num_batches(), size_t{3});
  pymfn::BatchView v;
  CHECK(reader->next(&v));
  CHECK(v.data == values->data());
  CHECK(reader->next(&v));
  CHECK(v.data == values->data() + 12);
  CHECK(reader->next(&v));
  CHECK_EQ(v.valid_rows, size_t{1});
  CHECK_EQ(float_at(v.data, 3), 27.0f);
  CHECK_EQ(float_at(v.data, 4), 0.0f);
  CHECK(!reader->next(&v));
  CHECK_THROWS(ds.reader(0, 0), pymfn::InvalidArgument, "batch_size");
}

TEST(array_dataset_refuses_empty_or_shapeless_memory) {
  auto values = std::make_shared<std::vector<float>>(8, 0.0f);
  CHECK_THROWS(pymfn::ArrayDataset(values, values->data(), 0, pymfn::DType::kFloat32, {4}), pymfn::InvalidArgument,
               "no samples");
  CHECK_THROWS(pymfn::ArrayDataset(values, values->data(), 2, pymfn::DType::kFloat32, {4, 0}),
               pymfn::InvalidArgument, "non-positive dimension");
  CHECK_THROWS(pymfn::ArrayDataset(values, nullptr, 2, pymfn::DType::kFloat32, {4}), pymfn::InvalidArgument,
               "null data pointer");
}
