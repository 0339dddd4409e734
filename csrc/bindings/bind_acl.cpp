// Python face of the AscendCL engine: _core.AclEngine, _core.acl_runtime(), _core.acl_emulator_leaks().
// Every call that can block on the runtime (load, execute, synchronise) releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>

#include "engines/acl/acl_engine.h"
#include "engines/acl/acl_loader.h"
#include "engines/acl/om_header.h"
#include "bindings/bindings.h"
#include "core/errors.h"

namespace pymfn_bindings {

namespace {

using pymfn::AclEngine;
using pymfn::TensorInfo;

py::dtype np_dtype(pymfn::DType t) { return py::dtype(pymfn::dtype_name(t)); }

py::dict stage_dict(const pymfn::StageTimes& t) {
  py::dict d;
  d["h2d_ms"] = t.h2d_ms;
  d["compute_ms"] = t.compute_ms;
  d["d2h_ms"] = t.d2h_ms;
  return d;
}

// Validates one array against a tensor and the prepared batch; returns its data pointer.
void* array_ptr(py::array& a, const TensorInfo& t, size_t rows, const std::string& what, bool writable) {
  if (!(a.flags() & py::array::c_style)) throw pymfn::InvalidArgument(what + ": array must be C-contiguous");
  if (writable && !a.writeable()) throw pymfn::InvalidArgument(what + ": array is read-only");
  if (!a.dtype().is(np_dtype(t.dtype))) {
    throw pymfn::InvalidArgument(what + " ('" + t.name + "'): dtype " + std::string(py::str(a.dtype())) +
                                 ", expected " + pymfn::dtype_name(t.dtype));
  }
  const size_t want = rows * t.sample_bytes;
  if (static_cast<size_t>(a.nbytes()) != want) {
    throw pymfn::InvalidArgument(what + " ('" + t.name + "'): " + std::to_string(a.nbytes()) + " bytes, expected " +
                                 std::to_string(want) + " (" + std::to_string(rows) + " rows x " +
                                 std::to_string(t.sample_bytes) + " bytes)");
  }
  return writable ? a.mutable_data() : const_cast<void*>(a.data());
}

std::vector<py::array> as_list(py::object obj) {
  std::vector<py::array> out;
  if (py::isinstance<py::array>(obj)) {
    out.push_back(obj.cast<py::array>());
  } else {
    for (auto item : obj) out.push_back(py::reinterpret_borrow<py::object>(item).cast<py::array>());
  }
  return out;
}

// Output shape of a batch: the model's per-sample dims after the batch dimension.
std::vector<py::ssize_t> batch_shape(const TensorInfo& t, size_t rows) {
  std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(rows)};
  size_t elems = 1;
  bool known = true;
  for (size_t i = 1; i < t.shape.size(); ++i) {
    if (t.shape[i] <= 0) known = false;
    shape.push_back(static_cast<py::ssize_t>(t.shape[i]));
    elems *= static_cast<size_t>(std::max<int64_t>(t.shape[i], 1));
  }
  if (!known || elems * pymfn::dtype_size(t.dtype) != t.sample_bytes) {
    // Dims do not describe the bytes (unknown dims or an internal layout): flat per-sample vector.
    shape = {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(t.sample_bytes / pymfn::dtype_size(t.dtype))};
  }
  return shape;
}

struct Binding {
  pymfn::IoBinding io;
  std::vector<py::array> keep;  // arrays referenced by io (kept alive until wait())
};

Binding make_binding(AclEngine& e, py::object inputs, py::object outputs) {
  Binding b;
  auto ins = as_list(inputs);
  auto outs = as_list(outputs);
  const auto ti = e.inputs();
  const auto to = e.outputs();
  if (ins.size() != ti.size() || outs.size() != to.size()) {
    throw pymfn::InvalidArgument("AclEngine: got " + std::to_string(ins.size()) + " inputs and " +
                                 std::to_string(outs.size()) + " outputs; the model has " + std::to_string(ti.size()) +
                                 " and " + std::to_string(to.size()));
  }
  const size_t rows = e.prepared_batch();
  b.io.batch_rows = rows;
  for (size_t i = 0; i < ins.size(); ++i) {
    b.io.inputs.push_back(array_ptr(ins[i], ti[i], rows, "input " + std::to_string(i), false));
  }
  for (size_t o = 0; o < outs.size(); ++o) {
    b.io.outputs.push_back(array_ptr(outs[o], to[o], rows, "output " + std::to_string(o), true));
  }
  for (auto& a : ins) b.keep.push_back(a);
  for (auto& a : outs) b.keep.push_back(a);
  return b;
}

// A numpy view of engine-owned memory (sized for the largest batch); keeps the engine alive.
py::array buffer_view(py::object self, AclEngine& e, void* ptr, const TensorInfo& t) {
  const size_t max_rows = e.supported_batches().back();
  auto shape = batch_shape(t, max_rows);
  return py::array(np_dtype(t.dtype), shape, ptr, self);
}

py::dict runtime_dict() {
  const auto& api = pymfn::acl::acl_api();
  py::dict d;
  d["runtime"] = api.runtime;
  d["emulator"] = api.emulator;
  d["library"] = api.library_path;
  d["selection"] = api.selection;
  d["cann_root"] = api.cann_root.empty() ? py::object(py::none()) : py::object(py::str(api.cann_root));
  d["searched"] = api.searched;
  d["emulator_version"] =
      (api.emulator && api.emu_version) ? py::object(py::str(api.emu_version())) : py::object(py::none());
  d["has_recent_err_msg"] = api.aclGetRecentErrMsg != nullptr;
  d["acl_init_refcount"] = pymfn::acl::acl_init_refcount();
  return d;
}

py::dict emulator_leaks() {
  const auto& api = pymfn::acl::acl_api();
  if (!api.emulator || !api.emu_get_counts) {
    throw pymfn::EngineError("acl_emulator_leaks: the loaded AscendCL runtime (" + api.runtime + ", " +
                             api.library_path + ") is not pymfn's emulator; leak counts exist only there");
  }
  pymfnEmuCounts c{};
  pymfn::acl::check(api, "pymfnEmuGetCounts", api.emu_get_counts(&c));
  py::dict d;
  d["device_allocs"] = c.device_allocs;
  d["host_allocs"] = c.host_allocs;
  d["device_bytes"] = c.device_bytes;
  d["host_bytes"] = c.host_bytes;
  d["datasets"] = c.datasets;
  d["data_buffers"] = c.data_buffers;
  d["descs"] = c.descs;
  d["models"] = c.models;
  d["contexts"] = c.contexts;
  d["streams"] = c.streams;
  d["events"] = c.events;
  d["tensor_descs"] = c.tensor_descs;
  d["executes"] = c.executes;  // a count of work done, not a leak: not in the total
  // the same sum as the emulator's own leak_total (what aclFinalize reports)
  d["total"] = c.device_allocs + c.host_allocs + c.datasets + c.data_buffers + c.descs + c.models + c.contexts +
               c.streams + c.events + c.tensor_descs;
  std::string report;
  if (api.emu_leak_report) {
    size_t need = api.emu_leak_report(nullptr, 0);
    report.assign(need + 1, '\0');
    api.emu_leak_report(&report[0], report.size());
    report.resize(need);
  }
  d["report"] = report;
  d["leaks_at_finalize"] = api.emu_leaks_at_finalize ? api.emu_leaks_at_finalize() : 0;
  return d;
}

}  // namespace

void bind_acl(py::module_& m) {
  auto cls = py::class_<AclEngine, pymfn::Engine, std::shared_ptr<AclEngine>>(m, "AclEngine", py::dynamic_attr(), R"doc(
AscendCL engine for Ascend .om models (real CANN runtime, or pymfn's emulator when CANN is absent or
PYMFN_ACL=emulator; see acl_runtime()).

AclEngine(path, device=0, num_requests=1): validates the om header (FormatError naming the file), loads
the model once per request slot (one model id and stream per slot, so async requests never share a model
id) and builds every dataset once. Batch sizes: supported_batches() (static: the om's batch; dynamic: the
sizes given to atc --dynamic_batch_size); prepare(b) selects one (the smallest is prepared on load) and
rejects others with InvalidArgument listing the offered sizes. Timing per call: h2d_ms, compute_ms (the
synchronous aclmdlExecute, msame's scope), d2h_ms. properties()['acl_runtime'] says whether the emulator
or a real CANN runtime ran; on the emulator, properties()['emulator_compute_precision'] and
['emulator_precision_reason'] say what it computed the om in, beside ['emulator_device_precision'], the
device's arithmetic for the same om.)doc");
  cls.def(py::init([](const std::string& path, int device, size_t num_requests) {
            py::gil_scoped_release release;
            return std::make_shared<AclEngine>(path, device, num_requests);
          }),
          py::arg("path"), py::arg("device") = 0, py::arg("num_requests") = 1)
      .def_property_readonly("device", &AclEngine::device)
      .def_property_readonly("device_mode", &AclEngine::device_mode,
                             "True in ACL_DEVICE run mode (host memory is device memory)")
      .def_property_readonly("prepared_batch", &AclEngine::prepared_batch)
      .def("execute_into", [](AclEngine& e, py::object inputs, py::object outputs) {
            Binding b = make_binding(e, inputs, outputs);
            pymfn::StageTimes t;
            {
              py::gil_scoped_release release;
              t = e.execute(b.io);
            }
            return stage_dict(t);
          }, py::arg("inputs"), py::arg("outputs"),
          "Synchronous execute of the prepared batch from caller arrays into caller arrays (C-contiguous, "
          "exact dtype and byte size; an input_buffer()/output_buffer() view skips that copy); returns "
          "{'h2d_ms', 'compute_ms', 'd2h_ms'}. Engine.execute(inputs) is the allocating convenience form.")
      .def("start", [](py::object self, size_t slot, py::object inputs, py::object outputs) {
            AclEngine& e = self.cast<AclEngine&>();
            Binding b = make_binding(e, inputs, outputs);
            {
              py::gil_scoped_release release;
              e.start(slot, b.io);
            }
            // Keep the arrays alive until wait(slot).
            py::dict pending = self.attr("__dict__").attr("setdefault")("_pending", py::dict());
            pending[py::int_(slot)] = py::cast(b.keep);
          }, py::arg("slot"), py::arg("inputs"), py::arg("outputs"),
          "Launch one batch asynchronously (aclmdlExecuteAsync on the slot's own stream and model id)")
      .def("wait", [](py::object self, size_t slot) {
            AclEngine& e = self.cast<AclEngine&>();
            pymfn::StageTimes t;
            try {
              py::gil_scoped_release release;
              t = e.wait(slot);
            } catch (...) {
              py::dict pending = self.attr("__dict__").attr("setdefault")("_pending", py::dict());
              if (pending.contains(py::int_(slot))) pending.attr("pop")(py::int_(slot));
              throw;
            }
            py::dict pending = self.attr("__dict__").attr("setdefault")("_pending", py::dict());
            if (pending.contains(py::int_(slot))) pending.attr("pop")(py::int_(slot));
            return stage_dict(t);
          }, py::arg("slot"), "Block until the slot's request finished; returns its stage times")
      .def("input_buffer", [](py::object self, size_t index, size_t slot) {
            AclEngine& e = self.cast<AclEngine&>();
            return buffer_view(self, e, e.input_buffer(slot, index), e.inputs().at(index));
          }, py::arg("index") = 0, py::arg("slot") = 0,
          "Writable view (largest batch) of the slot's input memory: pinned host memory in ACL_HOST mode, the "
          "device buffer itself in ACL_DEVICE mode (binding its first rows skips the input copy)")
      .def("output_buffer", [](py::object self, size_t index, size_t slot) {
            AclEngine& e = self.cast<AclEngine&>();
            return buffer_view(self, e, e.output_buffer(slot, index), e.outputs().at(index));
          }, py::arg("index") = 0, py::arg("slot") = 0,
          "View of the slot's output memory (device buffer in ACL_DEVICE mode, pinned host memory otherwise)")
      .def("copy_stats", [](const AclEngine& e) {
            const auto c = e.copy_stats();
            py::dict d;
            d["h2d_copies"] = c.h2d_copies;
            d["h2d_bytes"] = c.h2d_bytes;
            d["d2h_copies"] = c.d2h_copies;
            d["d2h_bytes"] = c.d2h_bytes;
            return d;
          }, "aclrtMemcpy calls (and bytes) the engine made for inputs and outputs since it was loaded; a batch "
             "bound from input_buffer() in ACL_DEVICE mode makes none")
      .def("__repr__", [](const AclEngine& e) {
            const auto p = e.properties();
            std::string compute;
            if (p.count("emulator_compute_precision"))
              compute = " compute=" + p.at("emulator_compute_precision") + " (device " +
                        p.at("emulator_device_precision") + ")";
            return "<AclEngine " + e.model_path() + " batches=" + std::to_string(e.supported_batches().size()) +
                   " runtime=" + p.at("acl_runtime") + compute + ">";
          });
  // Test hooks for the parsers of untrusted om bytes (tests/test_fuzz_native.py): the engine's header
  // check and the emulator's meta parser, without loading a model.
  m.def(
      "_read_om_header",
      [](const std::string& path) {
        pymfn::om::OmHeader h;
        {
          py::gil_scoped_release release;
          h = pymfn::om::read_om_header(path);
        }
        py::dict d;
        d["version"] = h.version;
        d["length"] = h.length;
        d["name"] = py::bytes(h.name);
        d["platform_version"] = py::bytes(h.platform_version);
        d["is_emulator"] = h.is_emulator();
        return d;
      },
      py::arg("path"),
      "The header AclEngine checks before loading (InputError / FormatError naming the file), as a dict.");
  m.def(
      "_parse_emulator_meta",
      [](const std::string& text) {
        pymfn::om::EmulatorMeta meta;
        std::string err;
        if (!pymfn::om::parse_emulator_meta(text, &meta, &err)) throw pymfn::InvalidArgument(err);
        auto tensors = [](const std::vector<pymfn::om::EmulatorTensor>& ts) {
          py::list out;
          for (const auto& t : ts) out.append(py::make_tuple(t.name, t.dtype, t.format, t.dims));
          return out;
        };
        py::dict d;
        d["precision"] = meta.precision;
        d["inputs"] = tensors(meta.inputs);
        d["outputs"] = tensors(meta.outputs);
        d["dynamic_batch"] = meta.dynamic_batch;
        return d;
      },
      py::arg("text"), "The emulator's meta parser: a dict, or InvalidArgument with its reason.");
  m.def("acl_runtime", &runtime_dict,
        "Which AscendCL library is (or would be) used: runtime ('emulator' or 'CANN <version>'), library path, "
        "why it was selected (PYMFN_ACL), CANN roots searched. Loads the library on first call; raises "
        "EngineError when none is usable (e.g. PYMFN_ACL=real without CANN).");
  m.def("acl_emulator_leaks", &emulator_leaks,
        "Resources the emulator counts as created but not released (device/host allocations, datasets, "
        "data buffers, descs, models, contexts, streams, events, tensor descs; 'total'; 'executes' is not a leak), its leak report text and the leaks found "
        "by the last aclFinalize. EngineError when the runtime is real CANN.");
}

}  // namespace pymfn_bindings
