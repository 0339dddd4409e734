// Python face of the Engine interface: TensorInfo, the Engine base class (with a trampoline so Python
// classes such as pymfn.engines.TFEngine can be driven by the C++ runner) and the OpenVINO engine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "bindings/bindings.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/errors.h"
#include "engines/recording/recording_engine.h"
#include "engines/simulated/simulated_engine.h"
#include "engines/slowed/slowed_engine.h"
#ifdef PYMFN_WITH_OPENVINO
#include "engines/openvino/openvino_engine.h"
#endif

namespace pymfn_bindings {

namespace {

using pymfn::DType;
using pymfn::Engine;
using pymfn::IoBinding;
using pymfn::StageTimes;
using pymfn::TensorInfo;
using pymfn::shape_str;

// Shape of `rows` samples of `info`: the batch dimension replaced, or [rows, elements] when the
// per-sample shape is unknown.
std::vector<py::ssize_t> batch_shape(const TensorInfo& info, size_t rows) {
  std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(rows)};
  bool known = info.shape.size() >= 1;
  for (size_t d = 1; d < info.shape.size(); ++d)
    if (info.shape[d] < 0) known = false;
  if (known) {
    for (size_t d = 1; d < info.shape.size(); ++d) shape.push_back(static_cast<py::ssize_t>(info.shape[d]));
  } else {
    shape.push_back(static_cast<py::ssize_t>(info.sample_bytes / pymfn::dtype_size(info.dtype)));
  }
  return shape;
}

// Bytes of `rows` samples as batch_shape() lays them out: what a numpy view over a buffer of
// rows * sample_bytes may cover. Equal to rows * sample_bytes for a consistent TensorInfo.
size_t view_bytes(const TensorInfo& info, size_t rows) {
  size_t n = pymfn::dtype_size(info.dtype);
  for (py::ssize_t d : batch_shape(info, rows)) {
    if (d < 0 || (d > 0 && n > SIZE_MAX / static_cast<size_t>(d))) return SIZE_MAX;  // never equal to a real size
    n *= static_cast<size_t>(d);
  }
  return n;
}

// A TensorInfo whose shape describes a different byte count than its sample_bytes would make a
// numpy view (of the runner's buffers) larger than the buffer: refused, naming the tensor.
void check_consistent(const TensorInfo& info, size_t rows, const std::string& who) {
  if (info.sample_bytes == 0 || info.sample_bytes % pymfn::dtype_size(info.dtype) != 0 ||
      view_bytes(info, rows) != rows * info.sample_bytes)
    throw pymfn::EngineError(who + ": tensor '" + info.name + "' declares sample_bytes " +
                             std::to_string(info.sample_bytes) + " but shape " + shape_str(info.shape) + " of " +
                             pymfn::dtype_name(info.dtype) + " (TensorInfo must agree with itself)");
}

py::dtype np_dtype(DType t) { return py::dtype(pymfn::dtype_name(t)); }

std::string np_shape_str(const py::array& a) {
  std::ostringstream os;
  os << '[';
  for (py::ssize_t d = 0; d < a.ndim(); ++d) os << (d ? ", " : "") << a.shape(d);
  os << ']';
  return os.str();
}

// Trampoline: every virtual either calls the Python override (taking the GIL) or has a sensible default.
// A Python engine implements execute(inputs: list[np.ndarray]) -> list[np.ndarray]; the C++ side hands it
// read-only arrays that own a copy of the batch (see input_array) and copies the returned arrays into
// the output buffers.
class PyEngine : public Engine {
 public:
  PyEngine() = default;
  PyEngine(const PyEngine&) = delete;
  PyEngine& operator=(const PyEngine&) = delete;
  // The last reference to an engine can go away on a runner thread without the GIL.
  ~PyEngine() override {
    if (input_pool_.empty()) return;
    if (!Py_IsInitialized()) {  // interpreter gone: leak rather than touch it
      for (py::object& o : input_pool_) o.release();
      return;
    }
    py::gil_scoped_acquire gil;
    input_pool_.clear();
  }

  std::string kind() const override { return attribute_str("kind"); }
  std::string model_path() const override { return attribute_str("model_path"); }

  std::vector<TensorInfo> inputs() const override {
    PYBIND11_OVERRIDE_PURE(std::vector<TensorInfo>, Engine, inputs, );
  }
  std::vector<TensorInfo> outputs() const override {
    PYBIND11_OVERRIDE_PURE(std::vector<TensorInfo>, Engine, outputs, );
  }
  std::vector<size_t> supported_batches() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Engine*>(this), "supported_batches");
    if (!override) return {};  // default: any batch size
    return override().cast<std::vector<size_t>>();
  }
  void prepare(size_t batch_rows) override {
    {
      py::gil_scoped_acquire gil;
      py::function override = py::get_override(static_cast<const Engine*>(this), "prepare");
      if (override) override(batch_rows);
    }
    cached_in_ = inputs();
    cached_out_ = outputs();
  }
  std::map<std::string, std::string> properties() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Engine*>(this), "properties");
    std::map<std::string, std::string> out;
    if (!override) return out;
    // Values may be any Python object; reports want strings.
    for (auto item : py::dict(override())) out[py::str(item.first)] = py::str(item.second);
    return out;
  }
  size_t max_inflight() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Engine*>(this), "max_inflight");
    if (!override) return 1;
    return override().cast<size_t>();
  }

  StageTimes execute(const IoBinding& binding) override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Engine*>(this), "execute");
    if (!override) throw pymfn::EngineError(type_name() + " does not implement execute(inputs) -> list of arrays");
    if (cached_in_.empty() && cached_out_.empty()) {
      cached_in_ = inputs();
      cached_out_ = outputs();
    }
    const auto& ins = cached_in_;
    const auto& outs = cached_out_;
    if (binding.inputs.size() != ins.size() || binding.outputs.size() != outs.size())
      throw pymfn::InvalidArgument(type_name() + ": binding has " + std::to_string(binding.inputs.size()) + "/" +
                                   std::to_string(binding.outputs.size()) + " buffers, the engine declares " +
                                   std::to_string(ins.size()) + " inputs / " + std::to_string(outs.size()) + " outputs");
    for (const auto& t : ins) check_consistent(t, binding.batch_rows, type_name());
    for (const auto& t : outs) check_consistent(t, binding.batch_rows, type_name());
    py::list arrays;
    if (input_pool_.size() != ins.size()) input_pool_.assign(ins.size(), py::object());
    for (size_t i = 0; i < ins.size(); ++i) arrays.append(input_array(i, ins[i], binding));
    const auto t0 = std::chrono::steady_clock::now();
    py::object result = override(arrays);
    const auto t1 = std::chrono::steady_clock::now();
    py::list seq;
    try {
      seq = py::list(result);
    } catch (const py::error_already_set&) {
      throw pymfn::EngineError(type_name() + ".execute must return a list of numpy arrays");
    }
    if (seq.size() != outs.size())
      throw pymfn::EngineError(type_name() + ".execute returned " + std::to_string(seq.size()) + " arrays, outputs() declares " +
                               std::to_string(outs.size()));
    for (size_t i = 0; i < outs.size(); ++i) {
      py::array a = py::array::ensure(seq[i], py::array::c_style);
      if (!a) throw pymfn::EngineError(type_name() + ".execute output " + std::to_string(i) + " is not an array");
      const auto want_shape = batch_shape(outs[i], binding.batch_rows);
      const py::dtype want = np_dtype(outs[i].dtype);
      bool same_shape = a.ndim() == static_cast<py::ssize_t>(want_shape.size());
      for (py::ssize_t d = 0; same_shape && d < a.ndim(); ++d) same_shape = a.shape(d) == want_shape[d];
      if (!a.dtype().equal(want) || !same_shape) {
        std::vector<int64_t> ws(want_shape.begin(), want_shape.end());
        throw pymfn::ShapeMismatch(model_path(), type_name() + ".execute output " + std::to_string(i) + " ('" +
                                                     outs[i].name + "') is " + std::string(py::str(a.dtype())) + " " +
                                                     np_shape_str(a) + ", expected " + pymfn::dtype_name(outs[i].dtype) +
                                                     " " + shape_str(ws));
      }
      std::memcpy(binding.outputs[i], a.data(), outs[i].sample_bytes * binding.batch_rows);
    }
    StageTimes t;
    t.compute_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    return t;
  }

  // A Python engine has no asynchronous path of its own: start() runs the request to completion and
  // wait() hands back its timings, so inflight > 1 works (serially) if max_inflight() says so.
  void start(size_t slot, const IoBinding& binding) override {
    const size_t k = max_inflight();
    if (slot >= k) throw pymfn::InvalidArgument(type_name() + ": slot " + std::to_string(slot) + " >= max_inflight " + std::to_string(k));
    if (pending_.size() < k) pending_.resize(k);
    pending_[slot] = execute(binding);
  }
  StageTimes wait(size_t slot) override {
    if (slot >= pending_.size()) throw pymfn::InvalidArgument(type_name() + ": wait(" + std::to_string(slot) + ") without start()");
    return pending_[slot];
  }
  // start() finishes the request under the GIL; wait() only reads that slot's entry of pending_, which
  // the first start() sized before any wait() could run.
  bool slots_thread_safe() const override { return true; }

 private:
  std::string type_name() const {
    py::gil_scoped_acquire gil;
    py::handle self = py::detail::get_object_handle(static_cast<const Engine*>(this), py::detail::get_type_info(typeid(Engine)));
    return self ? std::string(py::str(py::type::handle_of(self).attr("__name__"))) : std::string("Python engine");
  }

  // kind / model_path may be a plain attribute, a property or a method in the Python class.
  std::string attribute_str(const char* name) const {
    py::gil_scoped_acquire gil;
    py::handle self = py::detail::get_object_handle(static_cast<const Engine*>(this), py::detail::get_type_info(typeid(Engine)));
    if (!self) throw pymfn::EngineError(std::string("engine object has no Python side to ask for ") + name);
    py::object cls = py::reinterpret_borrow<py::object>(py::type::handle_of(self));
    py::object base = py::reinterpret_borrow<py::object>(py::type::handle_of<Engine>());
    // The base class's own descriptor would call back into C++: the subclass must define its own.
    // Looked up on the class, never on the instance: the inherited property would recurse into here.
    if (!py::hasattr(cls, name) || cls.attr(name).is(base.attr(name)))
      throw pymfn::EngineError(std::string(py::str(cls.attr("__name__"))) + " must define '" + name + "'");
    py::object v = py::reinterpret_borrow<py::object>(self).attr(name);
    if (PyCallable_Check(v.ptr())) v = v();
    return py::str(v);
  }

  // Input i of this batch as a read-only array that owns a copy of the bytes. The runner's and the
  // readers' buffers live only as long as a run (or a next() call), so a view of them would dangle in
  // an engine that keeps its inputs. An array nobody holds since the previous call (only the pool
  // references it) is refilled instead of allocated again; one the engine kept stays its own, with this
  // batch's values. Runs under the GIL.
  py::array input_array(size_t i, const TensorInfo& info, const IoBinding& binding) {
    const std::vector<py::ssize_t> shape = batch_shape(info, binding.batch_rows);
    const py::dtype dtype = np_dtype(info.dtype);
    py::object& pooled = input_pool_[i];
    bool reuse = pooled && Py_REFCNT(pooled.ptr()) == 1;
    if (reuse) {
      const auto a = py::reinterpret_borrow<py::array>(pooled);
      reuse = a.dtype().equal(dtype) && a.ndim() == static_cast<py::ssize_t>(shape.size());
      for (size_t d = 0; reuse && d < shape.size(); ++d) reuse = a.shape(static_cast<py::ssize_t>(d)) == shape[d];
    }
    if (!reuse) {
      py::array fresh(dtype, shape);
      fresh.attr("flags").attr("writeable") = false;
      pooled = fresh;
    }
    auto a = py::reinterpret_borrow<py::array>(pooled);
    // The array is read-only to the engine; pymfn writes it here, before handing it out.
    std::memcpy(const_cast<void*>(a.data()), binding.inputs[i], info.sample_bytes * binding.batch_rows);
    return a;
  }

  std::vector<TensorInfo> cached_in_, cached_out_;
  std::vector<StageTimes> pending_;
  std::vector<py::object> input_pool_;  // one reusable input array per model input (see input_array)
};

// Engine.execute(inputs) for C++ engines: validate, prepare the batch, run with the GIL released.
py::list execute_arrays(Engine& engine, const py::sequence& inputs) {
  const auto ins = engine.inputs();
  const auto outs = engine.outputs();
  if (inputs.size() != ins.size())
    throw pymfn::InvalidArgument("execute: got " + std::to_string(inputs.size()) + " input arrays, model " +
                                 engine.model_path() + " has " + std::to_string(ins.size()) + " inputs");
  std::vector<py::array> keep;
  IoBinding binding;
  size_t rows = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    py::array a = py::array::ensure(inputs[i], py::array::c_style);
    if (!a) throw pymfn::InvalidArgument("execute: input " + std::to_string(i) + " is not convertible to a numpy array");
    if (!a.dtype().equal(np_dtype(ins[i].dtype)))
      throw pymfn::ShapeMismatch(engine.model_path(), "execute: input " + std::to_string(i) + " ('" + ins[i].name + "') is " +
                                                         std::string(py::str(a.dtype())) + ", the model wants " +
                                                         pymfn::dtype_name(ins[i].dtype) + " (convert with .astype)");
    if (a.ndim() < 1 || a.shape(0) < 1)
      throw pymfn::ShapeMismatch(engine.model_path(), "execute: input " + std::to_string(i) + " has no batch dimension");
    const size_t r = static_cast<size_t>(a.shape(0));
    if (i == 0) rows = r;
    if (r != rows) throw pymfn::ShapeMismatch(engine.model_path(), "execute: inputs disagree on the batch size");
    const auto want = batch_shape(ins[i], rows);
    bool same = a.ndim() == static_cast<py::ssize_t>(want.size());
    for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == want[d];
    if (!same) {
      std::vector<int64_t> ws(want.begin(), want.end());
      throw pymfn::ShapeMismatch(engine.model_path(), "execute: input " + std::to_string(i) + " ('" + ins[i].name + "') has shape " +
                                                         np_shape_str(a) + ", the model wants " + shape_str(ws));
    }
    // The engine reads rows * sample_bytes from the pointer, whatever the dims say.
    if (static_cast<size_t>(a.nbytes()) != rows * ins[i].sample_bytes)
      throw pymfn::ShapeMismatch(engine.model_path(), "execute: input " + std::to_string(i) + " ('" + ins[i].name +
                                                         "') is " + std::to_string(a.nbytes()) + " bytes, the model reads " +
                                                         std::to_string(rows * ins[i].sample_bytes) + " (" +
                                                         std::to_string(rows) + " rows x " +
                                                         std::to_string(ins[i].sample_bytes) + " bytes)");
    binding.inputs.push_back(a.data());
    keep.push_back(a);
  }
  binding.batch_rows = rows;
  py::list result;
  for (const auto& o : outs) {
    // The engine writes rows * sample_bytes: the array must be exactly that large.
    if (view_bytes(o, rows) != rows * o.sample_bytes)
      throw pymfn::EngineError(engine.model_path() + ": output '" + o.name + "' declares " +
                               std::to_string(o.sample_bytes) + " bytes per sample but shape " + shape_str(o.shape));
    py::array a(np_dtype(o.dtype), batch_shape(o, rows));
    binding.outputs.push_back(a.mutable_data());
    result.append(a);
  }
  {
    py::gil_scoped_release release;
    engine.prepare(rows);
    engine.execute(binding);
  }
  return result;
}

// A RecordingEngine count from Python: a negative or oversized one gets a message naming the field instead
// of pybind11's generic cast error.
template <typename T>
T recording_count(const py::object& v, const char* field) {
  const auto refuse = [&] {
    return pymfn::InvalidArgument(std::string("recording ") + field + " must be an integer >= 0 that fits in 64 bits, got " +
                                  std::string(py::str(v)));
  };
  if (py::isinstance<py::int_>(v) && v.cast<py::int_>() < py::int_(0)) throw refuse();
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    throw refuse();
  }
}

// The bytes of one recorded tensor as an array [rows, *shape[1:]] of its dtype that owns them.
py::array recorded_array(std::vector<uint8_t>&& bytes, const TensorInfo& info, size_t rows) {
  check_consistent(info, rows, "RecordingEngine.records");
  if (bytes.size() != rows * info.sample_bytes)
    throw pymfn::EngineError("RecordingEngine.records: tensor '" + info.name + "' was recorded with " +
                             std::to_string(bytes.size()) + " bytes, the engine now declares " + std::to_string(rows) +
                             " rows x " + std::to_string(info.sample_bytes) + " bytes");
  auto* owned = new std::vector<uint8_t>(std::move(bytes));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
  return py::array(np_dtype(info.dtype), batch_shape(info, rows), owned->data(), owner);
}

py::list records_list(const pymfn::RecordingEngine& engine) {
  std::vector<pymfn::RecordingEngine::Record> records = engine.records();
  const std::vector<TensorInfo> ins = engine.inputs();
  const std::vector<TensorInfo> outs = engine.outputs();
  py::list result;
  for (auto& r : records) {
    if (r.inputs.size() != ins.size() || r.outputs.size() != outs.size())
      throw pymfn::EngineError("RecordingEngine.records: request " + std::to_string(r.request) + " was recorded with " +
                               std::to_string(r.inputs.size()) + " inputs / " + std::to_string(r.outputs.size()) +
                               " outputs, the engine now declares " + std::to_string(ins.size()) + " / " +
                               std::to_string(outs.size()));
    py::list inputs, outputs;
    for (size_t i = 0; i < ins.size(); ++i) inputs.append(recorded_array(std::move(r.inputs[i]), ins[i], r.rows));
    for (size_t i = 0; i < outs.size(); ++i) outputs.append(recorded_array(std::move(r.outputs[i]), outs[i], r.rows));
    py::dict d;
    d["request"] = r.request;
    d["rows"] = r.rows;
    d["inputs"] = inputs;
    d["outputs"] = outputs;
    result.append(d);
  }
  return result;
}

}  // namespace

void bind_engines(py::module_& m) {
  py::class_<TensorInfo>(m, "TensorInfo", "Name, dtype and shape of one model input or output. shape[0] is the "
                                          "batch (-1 = dynamic); sample_bytes is the size of one sample.")
      .def(py::init([](const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                       py::object sample_bytes) {
             TensorInfo t;
             t.name = name;
             t.dtype = pymfn::dtype_from_name(dtype);
             t.shape = shape;
             if (!sample_bytes.is_none()) {
               const long long sb = sample_bytes.cast<long long>();
               if (sb < 1) throw pymfn::InvalidArgument("TensorInfo '" + name + "': sample_bytes must be >= 1");
               t.sample_bytes = static_cast<size_t>(sb);
               if (t.sample_bytes % pymfn::dtype_size(t.dtype) != 0 || view_bytes(t, 1) != t.sample_bytes)
                 throw pymfn::InvalidArgument("TensorInfo '" + name + "': sample_bytes " + std::to_string(sb) +
                                              " disagrees with shape " + shape_str(shape) + " of " + dtype);
             } else {
               if (shape.size() < 1) throw pymfn::InvalidArgument("TensorInfo '" + name + "': shape needs a batch dimension");
               size_t elems = 1;
               for (size_t d = 1; d < shape.size(); ++d) {
                 if (shape[d] < 0)
                   throw pymfn::InvalidArgument("TensorInfo '" + name + "': shape " + shape_str(shape) +
                                                " has a dynamic non-batch dimension; pass sample_bytes");
                 if (shape[d] > 0 && elems > SIZE_MAX / 8 / static_cast<size_t>(shape[d]))
                   throw pymfn::InvalidArgument("TensorInfo '" + name + "': shape " + shape_str(shape) +
                                                " overflows a 64-bit size");
                 elems *= static_cast<size_t>(shape[d]);
               }
               t.sample_bytes = elems * pymfn::dtype_size(t.dtype);
             }
             return t;
           }),
           py::arg("name"), py::arg("dtype"), py::arg("shape"), py::arg("sample_bytes") = py::none(),
           "sample_bytes defaults to prod(shape[1:]) * itemsize.")
      .def_readwrite("name", &TensorInfo::name)
      .def_property(
          "dtype", [](const TensorInfo& t) { return pymfn::dtype_name(t.dtype); },
          [](TensorInfo& t, const std::string& s) { t.dtype = pymfn::dtype_from_name(s); }, "numpy dtype name")
      .def_readwrite("shape", &TensorInfo::shape)
      .def_readwrite("sample_bytes", &TensorInfo::sample_bytes)
      .def("__repr__", [](const TensorInfo& t) {
        return "TensorInfo(name='" + t.name + "', dtype='" + pymfn::dtype_name(t.dtype) + "', shape=" + shape_str(t.shape) +
               ", sample_bytes=" + std::to_string(t.sample_bytes) + ")";
      });

  py::class_<Engine, PyEngine, std::shared_ptr<Engine>>(m, "Engine", R"doc(
An inference engine the C++ runner can time. Native engines (OpenVINOEngine, AclEngine) derive from it;
a Python class can too (call super().__init__()) by defining:
  kind (str), model_path (str), inputs() / outputs() -> list[TensorInfo],
  execute(inputs: list[np.ndarray]) -> list[np.ndarray]   (arrays [batch, *sample_shape], declared dtypes)
and optionally supported_batches() -> list[int] (default: any), prepare(batch) and properties() -> dict.
The input arrays are read-only and own a copy of the batch: an engine may keep them after execute returns.
The runner calls it from C++ with the GIL released and re-acquires the GIL for each call.)doc")
      .def(py::init<>())
      .def_property_readonly("kind", &Engine::kind, "engine family: 'openvino', 'acl', 'tf', ...")
      .def_property_readonly("model_path", &Engine::model_path)
      .def("inputs", &Engine::inputs, "TensorInfo of each model input")
      .def("outputs", &Engine::outputs, "TensorInfo of each model output")
      .def("supported_batches", &Engine::supported_batches,
           "batch sizes the model can run; empty = any size (dynamic batch)")
      .def_property_readonly("batch_per_request", &Engine::batch_per_request,
                             "True when each request may run fewer rows than prepared (an offered size): what "
                             "the server batcher needs to size requests to the queries they carry")
      .def("prepare_up_to", &Engine::prepare_up_to, py::arg("max_rows"), py::call_guard<py::gil_scoped_release>(),
           "prepare for requests of up to max_rows rows, each choosing its own where the engine can (then "
           "batch_per_request is True); what the server's batcher calls")
      .def("prepare", &Engine::prepare, py::arg("batch"), py::call_guard<py::gil_scoped_release>(),
           "select the batch size for the following executes (may recompile; not timed by the runner)")
      .def("execute", &execute_arrays, py::arg("inputs"),
           "run one batch: inputs = one C-contiguous array per model input, [batch, *sample_shape] with the "
           "model's dtype. Calls prepare(batch) first, allocates the outputs and releases the GIL while running.")
      .def("max_inflight", &Engine::max_inflight, "requests the engine can have in flight (RunSettings.inflight cap)")
      .def("properties", &Engine::properties, "engine facts for reports (precision, threads, versions...)")
      .def("__repr__", [](Engine& e) {
        return "<" + e.kind() + " engine for " + e.model_path() + ">";
      });

  py::class_<pymfn::SimulatedEngine, Engine, std::shared_ptr<pymfn::SimulatedEngine>>(m, "SimulatedEngine", R"doc(
A test double for the runner: no model, a service time you set. Input float32 [batch, width], output
float32 [batch, 1] = row sums. service_ms: time each request takes (slept); slots: requests in flight;
serial=True runs requests one after another like one execution unit (False: slots run independently);
stalls_ms={n: ms}: request number n (0-based over every execute/start, warm-up included) takes ms longer.
service_ms=0 is a null engine: what a run then measures is the harness's own overhead.)doc")
      .def(py::init([](double service_ms, size_t slots, bool serial, const std::map<size_t, double>& stalls_ms,
                       size_t width) {
             pymfn::SimulatedEngineOptions o;
             o.service_ms = service_ms;
             o.slots = slots;
             o.serial = serial;
             o.stalls_ms = stalls_ms;
             o.width = width;
             return std::make_shared<pymfn::SimulatedEngine>(o);
           }),
           py::arg("service_ms") = 0.0, py::arg("slots") = 1, py::arg("serial") = true,
           py::arg("stalls_ms") = std::map<size_t, double>{}, py::arg("width") = 4)
      .def_property_readonly("requests", &pymfn::SimulatedEngine::requests, "requests started so far");

  py::class_<pymfn::SlowedEngine, Engine, std::shared_ptr<pymfn::SlowedEngine>>(m, "SlowedEngine", R"doc(
Any engine made slower on purpose, to measure what a benchmark can detect: after each request of `engine`
it waits `fraction` of that request's own time (0.2: every request takes 1.2x; 0..10) plus `extra_ms`
(0..10000). execute(): the request is the wrapped execute(); start()/wait(): from start() to the end of the
wrapped wait(). Everything else (inputs, outputs, batches, slots, stage times) is the wrapped engine's;
properties() adds "slowdown".)doc")
      .def(py::init([](std::shared_ptr<Engine> engine, double fraction, double extra_ms) {
             return std::make_shared<pymfn::SlowedEngine>(std::move(engine), pymfn::Slowdown{fraction, extra_ms});
           }),
           py::arg("engine"), py::arg("fraction") = 0.0, py::arg("extra_ms") = 0.0, py::keep_alive<1, 2>())
      .def_property_readonly("engine", [](const pymfn::SlowedEngine& e) { return e.inner(); }, "the wrapped engine")
      .def_property_readonly("fraction", [](const pymfn::SlowedEngine& e) { return e.slowdown().fraction; })
      .def_property_readonly("extra_ms", [](const pymfn::SlowedEngine& e) { return e.slowdown().extra_ms; });

  py::class_<pymfn::RecordingEngine, Engine, std::shared_ptr<pymfn::RecordingEngine>>(m, "RecordingEngine", R"doc(
Any engine that keeps copies of a deterministic sample of its requests, for an audit that runs the
recorded inputs again and compares the outputs (like LoadGen's compliance TEST01). Requests are numbered
from 0 over every execute() and start(); request n is recorded when n >= `skip` and a hash of (`seed`, n)
falls below `fraction` (in (0, 1]), up to `max_records` (1..1,000,000) in all. Inputs are copied before
the request runs, outputs after it; a request outside the sample costs an atomic increment and a hash.
Everything else is the wrapped engine's; properties() adds "recording".)doc")
      .def(py::init([](std::shared_ptr<Engine> engine, double fraction, const py::object& max_records,
                       const py::object& seed, const py::object& skip) {
             pymfn::RecordingPlan plan;
             plan.fraction = fraction;
             plan.max_records = recording_count<size_t>(max_records, "max_records");
             plan.seed = recording_count<uint64_t>(seed, "seed");
             plan.skip = recording_count<size_t>(skip, "skip");
             return std::make_shared<pymfn::RecordingEngine>(std::move(engine), plan);
           }),
           py::arg("engine"), py::arg("fraction") = 0.01, py::arg("max_records") = 64, py::arg("seed") = 0,
           py::arg("skip") = 0, py::keep_alive<1, 2>())
      .def_property_readonly("engine", [](const pymfn::RecordingEngine& e) { return e.inner(); }, "the wrapped engine")
      .def_property_readonly("fraction", [](const pymfn::RecordingEngine& e) { return e.plan().fraction; })
      .def_property_readonly("max_records", [](const pymfn::RecordingEngine& e) { return e.plan().max_records; })
      .def_property_readonly("seed", [](const pymfn::RecordingEngine& e) { return e.plan().seed; })
      .def_property_readonly("skip", [](const pymfn::RecordingEngine& e) { return e.plan().skip; })
      .def_property_readonly("requests_seen", &pymfn::RecordingEngine::requests_seen,
                             "requests numbered so far (every execute and start)")
      .def("records", &records_list,
           "records() -> list[dict]: {'request': int, 'rows': int, 'inputs': [np.ndarray], 'outputs': "
           "[np.ndarray]} per recorded request, in the order they completed. Each array is [rows, "
           "*shape[1:]] of its tensor's dtype and owns a copy of the bytes.")
      .def("clear", &pymfn::RecordingEngine::clear,
           "forget the records and number requests from 0 again (between runs, nothing in flight)");

#ifdef PYMFN_WITH_OPENVINO
  py::class_<pymfn::OpenVINOEngine, Engine, std::shared_ptr<pymfn::OpenVINOEngine>>(m, "OpenVINOEngine", R"doc(
OpenVINO on the host: a frozen TensorFlow .pb (read directly by OpenVINO's TF frontend), an .onnx file or
an OpenVINO IR .xml. precision: 'f32' (default; forces f32 so results match TensorFlow), 'bf16' or 'f16'
(the plugin may fall back when the CPU lacks them: properties()['inference_precision'] tells what ran).
threads = ov::inference_num_threads, streams = ov::num_streams (0 = OpenVINO decides), num_requests =
infer requests for in-flight runs, hint = 'latency' or 'throughput'. A dynamic-batch model is reshaped
and recompiled by prepare(batch); a static-batch model only offers its own batch.)doc")
      .def(py::init([](const std::string& path, const std::string& precision, int threads, int streams,
                       size_t num_requests, const std::string& hint, const std::string& device) {
             pymfn::OpenVINOOptions o;
             o.precision = precision;
             o.threads = threads;
             o.streams = streams;
             o.num_requests = num_requests;
             o.hint = hint;
             o.device = device;
             py::gil_scoped_release release;
             return std::make_shared<pymfn::OpenVINOEngine>(path, o);
           }),
           py::arg("path"), py::arg("precision") = "f32", py::arg("threads") = 0, py::arg("streams") = 0,
           py::arg("num_requests") = 1, py::arg("hint") = "latency", py::arg("device") = "CPU")
      .def_property_readonly("prepared_batch", &pymfn::OpenVINOEngine::prepared_batch,
                             "batch size the engine is currently compiled for");
#endif
}

}  // namespace pymfn_bindings
