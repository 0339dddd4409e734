// Each part of the core registers its Python classes through one of these, called from module.cpp.
#pragma once
#include <pybind11/pybind11.h>

namespace pymfn_bindings {
namespace py = pybind11;

void bind_data(py::module_& m);     // bind_data.cpp: Dataset, BatchReader, folder/packed/array sources
void bind_runner(py::module_& m);   // bind_runner.cpp: RunSettings, RunResult, run_benchmark, infer_all
void bind_engines(py::module_& m);  // bind_engines.cpp: Engine, TensorInfo, OpenVINO engine
#ifdef PYMFN_WITH_ACL
void bind_acl(py::module_& m);      // bind_acl.cpp: AscendCL engine, om header, emulator queries
#endif

}  // namespace pymfn_bindings
