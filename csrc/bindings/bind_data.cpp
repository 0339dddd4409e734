// Python bindings of the datasets (csrc/data). Thin by design: argument conversion, GIL release
// around anything that blocks, and numpy views of batch memory without copies. The reader object is
// registered as pymfn::BatchReader so other bindings (run_benchmark, infer_all) can take it as
// `pymfn::BatchReader&`.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "core/dataset.h"
#include "core/errors.h"
#include "core/packed_format.h"
#include "data/array_dataset.h"
#include "data/folder_dataset.h"
#include "data/mapped_copy.h"
#include "data/packed_dataset.h"

namespace pymfn_bindings {

namespace {

using pymfn::BatchReader;
using pymfn::BatchView;
using pymfn::Dataset;
using pymfn::DType;

// The reader Python gets: serialises next()/rewind() (Python threads may call them concurrently once
// the GIL is released; readers are single-consumer) and knows the numpy shape of one sample (a source
// that only knows its byte size gives flat rows). C++ consumers see a plain BatchReader.
class TypedReader final : public BatchReader {
 public:
  explicit TypedReader(std::unique_ptr<BatchReader> inner) : inner_(std::move(inner)), shape_(inner_->sample_spec().shape) {
    const pymfn::SampleSpec& spec = inner_->sample_spec();
    if (shape_.empty()) shape_.push_back(static_cast<int64_t>(spec.bytes / pymfn::dtype_size(spec.dtype)));
  }
  bool next(BatchView* out) override {
    std::lock_guard<std::mutex> lk(mu_);
    return inner_->next(out);
  }
  void rewind() override {
    std::lock_guard<std::mutex> lk(mu_);
    inner_->rewind();
  }
  const pymfn::SampleSpec& sample_spec() const override { return inner_->sample_spec(); }
  size_t num_batches() const override { return inner_->num_batches(); }
  size_t batch_size() const override { return inner_->batch_size(); }
  pymfn::ReaderStats stats() const override { return inner_->stats(); }

  DType dtype() const { return inner_->sample_spec().dtype; }
  const std::vector<int64_t>& shape() const { return shape_; }
  size_t sample_bytes() const { return inner_->sample_spec().bytes; }

 private:
  std::unique_ptr<BatchReader> inner_;
  std::mutex mu_;
  std::vector<int64_t> shape_;
};

// What reader.next() returns to Python: the view plus a reference to the reader, which owns the
// memory `view.data` points at (ring buffer, mmap or numpy array).
struct PyBatch {
  BatchView view;
  std::shared_ptr<BatchReader> reader;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;  // one sample
  size_t sample_bytes = 0;
};

// A size argument from Python: any int, checked here so that a negative, zero (where 1 is the minimum)
// or astronomically large value is an InvalidArgument naming the argument, never pybind11's generic
// TypeError or a wrapped-around size_t.
size_t size_arg(const py::object& v, const char* what, long long minimum) {
  // Anything with __index__ (Python and numpy integers), but not bools or floats.
  PyObject* index = py::isinstance<py::bool_>(v) ? nullptr : PyNumber_Index(v.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    throw pymfn::InvalidArgument(std::string(what) + " must be an int, got " +
                                 std::string(py::str(py::type::of(v).attr("__name__"))));
  }
  const py::object i = py::reinterpret_steal<py::object>(index);
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow > 0) throw pymfn::InvalidArgument(std::string(what) + " = " + std::string(py::str(v)) + " is too large");
  if (overflow < 0 || x < minimum)
    throw pymfn::InvalidArgument(std::string(what) + (minimum == 1 ? " must be at least 1" : " must be >= 0") +
                                 ", got " + std::string(py::str(v)));
  return static_cast<size_t>(x);
}

size_t positive(const py::object& v, const char* what) { return size_arg(v, what, 1); }
size_t non_negative(const py::object& v, const char* what) { return size_arg(v, what, 0); }

std::string fspath(const py::object& p) { return py::str(py::module_::import("os").attr("fspath")(p)); }

std::shared_ptr<BatchReader> make_reader(const Dataset& ds, const py::object& batch_size, const py::object& prefetch,
                                         const py::object& io_threads) {
  const size_t b = positive(batch_size, "batch_size");
  const size_t k = non_negative(prefetch, "prefetch");
  const size_t t = non_negative(io_threads, "threads");
  std::unique_ptr<BatchReader> inner;
  {
    py::gil_scoped_release nogil;
    if (auto* folder = dynamic_cast<const pymfn::FolderDataset*>(&ds))
      inner = folder->make_reader(b, k, t);
    else
      inner = ds.reader(b, k);
  }
  return std::make_shared<TypedReader>(std::move(inner));
}

// Typed numpy view of rows [0, rows) of a batch; `base` keeps the memory alive. Read-only: the
// memory may be a read-only mmap or the caller's own array.
py::array batch_array(const PyBatch& b, size_t rows, py::object base) {
  std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(rows)};
  for (int64_t d : b.shape) shape.push_back(static_cast<py::ssize_t>(d));
  py::array arr(py::dtype(pymfn::dtype_name(b.dtype)), shape, b.view.data, base);
  arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

py::dict stats_dict(const BatchReader& r) {
  const pymfn::ReaderStats s = r.stats();
  py::dict d;
  d["batches"] = s.batches;
  d["bytes_copied"] = s.bytes_copied;
  d["bytes_read"] = s.bytes_read;
  d["padded_batches"] = s.padded_batches;
  return d;
}

py::object reader_next(const std::shared_ptr<BatchReader>& self) {
  // Readers made by dataset.reader() carry dtype and shape; a bare C++ reader could not be presented
  // as a typed array, so refuse it before consuming a batch rather than guess a layout.
  auto* typed = dynamic_cast<TypedReader*>(self.get());
  if (typed == nullptr)
    throw pymfn::InvalidArgument("this BatchReader carries no dtype/shape; create readers with dataset.reader()");
  BatchView view;
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = self->next(&view);
  }
  if (!ok) return py::none();
  auto batch = std::make_unique<PyBatch>();
  batch->view = view;
  batch->reader = self;
  batch->dtype = typed->dtype();
  batch->shape = typed->shape();
  batch->sample_bytes = typed->sample_bytes();
  return py::cast(std::move(batch));
}

DType numpy_dtype(const py::array& a) {
  const std::string name = py::str(a.dtype());
  try {
    return pymfn::dtype_from_name(name);
  } catch (const pymfn::InvalidArgument&) {
    throw pymfn::InvalidArgument("array dtype " + name +
                                 " is not supported (expected native-endian float32, float16, int8, int32 or uint8)");
  }
}

std::shared_ptr<pymfn::ArrayDataset> make_array_dataset(const py::object& obj, const std::string& origin,
                                                        const std::optional<std::string>& path) {
  if (!py::isinstance<py::array>(obj))
    throw pymfn::InvalidArgument(std::string("ArrayDataset needs a numpy.ndarray, got ") +
                                 std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (arr.ndim() < 1) throw pymfn::InvalidArgument(origin + ": a 0-d array has no sample axis (expected [N, ...])");
  if (!(arr.flags() & py::array::c_style))
    throw pymfn::InvalidArgument(origin + ": array is not C-contiguous; samples are used in place, so pass "
                                 "numpy.ascontiguousarray(a) if a copy is acceptable");
  const DType dt = numpy_dtype(arr);
  std::vector<int64_t> shape;
  for (py::ssize_t i = 1; i < arr.ndim(); ++i) shape.push_back(static_cast<int64_t>(arr.shape(i)));
  // The deleter runs when the dataset and its last reader are gone, possibly without the GIL held.
  auto* held = new py::object(arr);
  std::shared_ptr<const void> owner(arr.data(), [held](const void*) {
    if (!Py_IsInitialized()) return;  // interpreter shutting down: leak rather than crash
    py::gil_scoped_acquire gil;
    delete held;
  });
  return std::make_shared<pymfn::ArrayDataset>(std::move(owner), arr.data(), static_cast<size_t>(arr.shape(0)), dt,
                                               std::move(shape), origin, path.value_or(std::string()));
}

}  // namespace

void bind_data(py::module_& m) {
  using namespace pybind11::literals;

  m.attr("PACKED_MAGIC") = py::bytes(pymfn::kPackedMagic, sizeof(pymfn::kPackedMagic));
  m.attr("PACKED_VERSION") = pymfn::kPackedVersion;
  m.attr("PACKED_HEADER_BYTES") = pymfn::kPackedHeaderBytes;
  m.attr("PACKED_MAX_DIMS") = pymfn::kPackedMaxDims;

  m.def(
      "sort_file_names",
      [](std::vector<std::string> names, const std::string& order) {
        if (pymfn::file_order_from_name(order) == pymfn::FileOrder::kNatural)
          std::sort(names.begin(), names.end(), pymfn::natural_less);
        else
          std::sort(names.begin(), names.end());
        return names;
      },
      "names"_a, "order"_a = "natural",
      "Sort file names the way FolderDataset does: 'natural' (2.bin before 10.bin) or 'lexicographic' "
      "(byte order, msame's). Exposed so Python tools list folders in exactly the same order.");

  py::class_<PyBatch, std::unique_ptr<PyBatch>>(
      m, "BatchView",
      "One batch from a reader. `.data` is a read-only numpy view of batch_rows samples, valid until the "
      "next call to reader.next() (the reader reuses its buffers; copy it to keep it).")
      .def_property_readonly(
          "data", [](py::object self) { return batch_array(self.cast<const PyBatch&>(), self.cast<const PyBatch&>().view.batch_rows, self); },
          "numpy view [batch_rows, *sample_shape], no copy; rows >= valid_rows are zero padding")
      .def_property_readonly(
          "valid_data", [](py::object self) { return batch_array(self.cast<const PyBatch&>(), self.cast<const PyBatch&>().view.valid_rows, self); },
          "numpy view of the real rows only [valid_rows, *sample_shape]")
      .def_property_readonly("valid_rows", [](const PyBatch& b) { return b.view.valid_rows; })
      .def_property_readonly("batch_rows", [](const PyBatch& b) { return b.view.batch_rows; })
      .def_property_readonly("first_sample", [](const PyBatch& b) { return b.view.first_sample; })
      .def_property_readonly("batch_index", [](const PyBatch& b) { return b.view.batch_index; })
      .def_property_readonly("address", [](const PyBatch& b) { return reinterpret_cast<uintptr_t>(b.view.data); },
                             "address of row 0 (to check zero-copy claims)")
      .def("__repr__", [](const PyBatch& b) {
        return "<BatchView batch " + std::to_string(b.view.batch_index) + ": samples " +
               std::to_string(b.view.first_sample) + ".." + std::to_string(b.view.first_sample + b.view.valid_rows) +
               ", " + std::to_string(b.view.valid_rows) + "/" + std::to_string(b.view.batch_rows) + " rows valid>";
      });

  py::class_<BatchReader, std::shared_ptr<BatchReader>>(
      m, "BatchReader",
      "Sequential batches over a dataset (one consumer). Iterate it, or call next() until it returns None, "
      "then rewind() for another pass.")
      .def("next", &reader_next, "The next BatchView, or None when the pass is over. Releases the GIL while waiting.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](const std::shared_ptr<BatchReader>& self) {
             py::object b = reader_next(self);
             if (b.is_none()) throw py::stop_iteration();
             return b;
           })
      .def(
          "rewind",
          [](BatchReader& r) {
            py::gil_scoped_release nogil;
            r.rewind();
          },
          "Start a new pass from sample 0 (views from the old pass become stale).")
      .def_property_readonly("dtype", [](const BatchReader& r) { return pymfn::dtype_name(r.sample_spec().dtype); })
      .def_property_readonly("sample_bytes", [](const BatchReader& r) { return r.sample_spec().bytes; },
                             "bytes of one sample: what the runner compares with the model input")
      .def_property_readonly("sample_shape", [](const BatchReader& r) { return r.sample_spec().shape; },
                             "shape of one sample as the source states it (may be empty)")
      .def_property_readonly("origin", [](const BatchReader& r) { return r.sample_spec().origin; },
                             "the source as errors name it ('npy /x.npy', 'packed /x.pack', 'folder /x')")
      .def_property_readonly("num_batches", &BatchReader::num_batches)
      .def_property_readonly("batch_size", &BatchReader::batch_size)
      .def("__len__", &BatchReader::num_batches)
      .def("stats", &stats_dict,
           "Counters since creation: batches, bytes_copied (host copies made to build batches), bytes_read "
           "(read()/pread() from files), padded_batches.");

  py::class_<Dataset, std::shared_ptr<Dataset>>(m, "Dataset",
                                                "A source of fixed-size samples; knows nothing about models.")
      .def_property_readonly("sample_count", &Dataset::sample_count)
      .def("__len__", &Dataset::sample_count)
      .def_property_readonly("sample_bytes", &Dataset::sample_bytes)
      .def_property_readonly("dtype", [](const Dataset& d) { return pymfn::dtype_name(d.dtype()); })
      .def_property_readonly("sample_shape", &Dataset::sample_shape,
                             "shape of one sample (may be empty when only the byte size is known)")
      .def("describe", &Dataset::describe)
      .def("__repr__", [](const Dataset& d) { return "<" + d.describe() + ">"; })
      .def(
          "reader",
          [](const Dataset& d, const py::object& batch_size, const py::object& prefetch) {
            return make_reader(d, batch_size, prefetch, py::int_(0));
          },
          "batch_size"_a, "prefetch"_a = 2,
          "A BatchReader of batch_size rows. prefetch = batches prepared ahead in the background (folder "
          "sources; packed files and mapped arrays use it as a readahead hint; plain arrays ignore it).");

  py::class_<pymfn::FolderDataset, Dataset, std::shared_ptr<pymfn::FolderDataset>>(
      m, "FolderDataset", "A folder of per-sample .bin files (msame / image2bin layout), gathered into batches in the background.")
      .def(py::init([](const py::object& path, const py::object& sample_bytes, const std::string& dtype,
                       std::vector<int64_t> sample_shape, const std::string& order, const std::string& io) {
             const std::string p = fspath(path);
             const size_t sb = positive(sample_bytes, "sample_bytes");
             const DType dt = pymfn::dtype_from_name(dtype);
             const pymfn::FileOrder fo = pymfn::file_order_from_name(order);
             const pymfn::FolderIO fio = pymfn::folder_io_from_name(io);
             py::gil_scoped_release nogil;
             return std::make_shared<pymfn::FolderDataset>(p, sb, dt, std::move(sample_shape), fo, fio);
           }),
           "path"_a, "sample_bytes"_a, "dtype"_a = "float32", "sample_shape"_a = std::vector<int64_t>{},
           "order"_a = "natural", "io"_a = "mmap",
           "Open a folder. Every *.bin file must be exactly sample_bytes long (ShapeMismatch otherwise). "
           "order: 'natural' (2.bin before 10.bin) or 'lexicographic' (msame). io: 'mmap' (each file mapped "
           "once and copied from its mapping on every read under a SIGBUS guard; fastest from the second "
           "pass on) or 'pread' (open + pread + close per read; nothing stays mapped). Every read checks the "
           "file against the listing: one deleted, resized, replaced or rewritten since the folder was opened "
           "raises InputError (ShapeMismatch for a new size) naming it.")
      .def(
          "files",
          [](const pymfn::FolderDataset& d) {
            // Decoded like os.fsdecode: a file name that is not UTF-8 still round-trips to open().
            py::list out;
            for (const std::string& p : d.files())
              out.append(py::reinterpret_steal<py::str>(
                  PyUnicode_DecodeFSDefaultAndSize(p.data(), static_cast<Py_ssize_t>(p.size()))));
            return out;
          },
          "Paths in dataset order: sample i is files()[i].")
      .def_property_readonly("path", &pymfn::FolderDataset::dir)
      .def_property_readonly("order", [](const pymfn::FolderDataset& d) { return pymfn::file_order_name(d.order()); })
      .def_property_readonly("io", [](const pymfn::FolderDataset& d) { return pymfn::folder_io_name(d.io()); })
      .def_property_readonly("mapped_files", &pymfn::FolderDataset::mapped_files,
                             "Files mapped so far (io='mmap'); they stay mapped while the dataset or a reader lives.")
      .def(
          "reader",
          [](const pymfn::FolderDataset& d, const py::object& batch_size, const py::object& prefetch,
             const py::object& threads) {
            return make_reader(d, batch_size, prefetch, threads);
          },
          "batch_size"_a, "prefetch"_a = 2, "threads"_a = 0,
          "A BatchReader of batch_size rows; prefetch batches are read ahead by `threads` I/O threads "
          "(0 = automatic). prefetch=0 reads synchronously inside next().");

  py::class_<pymfn::PackedDataset, Dataset, std::shared_ptr<pymfn::PackedDataset>>(
      m, "PackedDataset",
      "A packed sample file (see pymfn.pack) mapped into memory. Each batch is copied out of the mapping under a "
      "SIGBUS guard and the file is checked after the copy: a pack truncated or rewritten during a run is an "
      "InputError naming it, never a signal. Batch views are valid until the reader's next next().")
      .def(py::init([](const py::object& path, const py::object& sample_bytes, std::optional<std::string> dtype,
                       std::optional<std::vector<int64_t>> sample_shape) {
             const std::string p = fspath(path);
             size_t sb = 0;
             if (!sample_bytes.is_none()) sb = positive(sample_bytes, "sample_bytes");
             DType dt{};
             if (dtype) dt = pymfn::dtype_from_name(*dtype);
             const std::vector<int64_t> shape = sample_shape.value_or(std::vector<int64_t>{});
             py::gil_scoped_release nogil;
             auto ds = std::make_shared<pymfn::PackedDataset>(p);
             ds->expect(sb, dtype ? &dt : nullptr, shape);
             return ds;
           }),
           "path"_a, "sample_bytes"_a = py::none(), "dtype"_a = py::none(), "sample_shape"_a = py::none(),
           "Open and validate a packed file. The optional sample_bytes / dtype / sample_shape are what the "
           "model expects: a disagreement raises ShapeMismatch.")
      .def_property_readonly("path", &pymfn::PackedDataset::path)
      .def_property_readonly("file_bytes", &pymfn::PackedDataset::file_bytes)
      .def_property_readonly("header_bytes", &pymfn::PackedDataset::header_bytes);

  py::class_<pymfn::ArrayDataset, Dataset, std::shared_ptr<pymfn::ArrayDataset>>(
      m, "ArrayDataset",
      "Samples in a numpy array (first axis = samples): it must be C-contiguous and is kept alive while the "
      "dataset or a reader exists. Batches of plain memory are views into it; an array that maps a file (see "
      "mapped_file) is read through guarded copies instead.")
      .def(py::init(&make_array_dataset), "array"_a, "origin"_a = "numpy array", "path"_a = py::none(),
           "origin names the samples in messages ('npy /x.npy'); path is the file they came from, if any "
           "(the .path of errors about them).")
      .def_property_readonly(
          "mapped_file", [](const pymfn::ArrayDataset& d) -> py::object {
            const std::string f = d.mapped_file();
            return f.empty() ? py::object(py::none()) : py::object(py::str(f));
          },
          "The file the array's memory maps (numpy.load(mmap_mode=...), numpy.memmap), or None for plain memory. "
          "Batches of a mapped file are copied out under a SIGBUS guard and the file is checked after each copy, "
          "so a file truncated or rewritten during a run is an InputError naming it.");

  // Test hook (see copy_after_truncating_mapping in data/mapped_copy.h).
  m.def(
      "_copy_after_truncating_mapping",
      [](const py::object& path, const py::object& mapped_bytes, const py::object& truncate_to) {
        const std::string p = fspath(path);
        const size_t n = positive(mapped_bytes, "mapped_bytes");
        const size_t cut = non_negative(truncate_to, "truncate_to");
        py::gil_scoped_release nogil;
        return pymfn::copy_after_truncating_mapping(p, n, cut);
      },
      "path"_a, "mapped_bytes"_a, "truncate_to"_a,
      "Test hook: map the first mapped_bytes of path, truncate the file to truncate_to bytes, copy the "
      "mapping with the SIGBUS-guarded copy FolderDataset uses. Returns False when the copy faulted.");
}

}  // namespace pymfn_bindings
