// pymfn._core: the module object, typed exceptions and build_info(). Everything else is bound in the
// bind_*.cpp files listed in bindings.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "core/errors.h"

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = PYMFN_VERSION;
  info["compiler"] = PYMFN_COMPILER;
  info["build_type"] = PYMFN_BUILD_TYPE;
  info["cxx_standard"] = __cplusplus;
  py::list engines;
#ifdef PYMFN_WITH_OPENVINO
  engines.append("openvino");
  info["openvino"] = PYMFN_OPENVINO_VERSION;
#else
  info["openvino"] = py::none();
#endif
#ifdef PYMFN_WITH_ACL
  engines.append("acl");
#endif
  info["engines"] = engines;
  // "real": built against CANN headers; "emulated": the emulator libascendcl.so was built; "off".
  info["acl"] = PYMFN_ACL_MODE;
#ifdef PYMFN_CANN_VERSION
  info["cann_version"] = PYMFN_CANN_VERSION;
  info["cann_root"] = PYMFN_CANN_ROOT;
#else
  info["cann_version"] = py::none();
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pymfn native core: datasets, engines and the benchmark runner";

  // Exception hierarchy mirrors csrc/core/errors.h. InputError also derives from ValueError and
  // OSError-free on purpose: a bad file is a value problem for the caller, not an OS failure.
  static py::exception<pymfn::Error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<pymfn::InvalidArgument> invalid_argument(m, "InvalidArgument", PyExc_ValueError);
  static py::exception<pymfn::InputError> input_error(m, "InputError", PyExc_ValueError);
  static py::exception<pymfn::ShapeMismatch> shape_mismatch(m, "ShapeMismatch", input_error.ptr());
  static py::exception<pymfn::FormatError> format_error(m, "FormatError", input_error.ptr());
  static py::exception<pymfn::EngineError> engine_error(m, "EngineError", error.ptr());
  static py::exception<pymfn::AclError> acl_error(m, "AclError", engine_error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pymfn::AclError& e) {
      py::object exc = py::reinterpret_borrow<py::object>(acl_error.ptr())(e.what());
      exc.attr("code") = e.code();
      exc.attr("code_name") = e.code_name();
      exc.attr("call") = e.call();
      exc.attr("recent_msg") = e.recent_msg();
      PyErr_SetObject(acl_error.ptr(), exc.ptr());
    } catch (const pymfn::ShapeMismatch& e) {
      py::object exc = py::reinterpret_borrow<py::object>(shape_mismatch.ptr())(e.what());
      exc.attr("path") = e.path();
      PyErr_SetObject(shape_mismatch.ptr(), exc.ptr());
    } catch (const pymfn::FormatError& e) {
      py::object exc = py::reinterpret_borrow<py::object>(format_error.ptr())(e.what());
      exc.attr("path") = e.path();
      PyErr_SetObject(format_error.ptr(), exc.ptr());
    } catch (const pymfn::InputError& e) {
      py::object exc = py::reinterpret_borrow<py::object>(input_error.ptr())(e.what());
      exc.attr("path") = e.path();
      PyErr_SetObject(input_error.ptr(), exc.ptr());
    } catch (const pymfn::EngineError& e) {
      py::set_error(engine_error, e.what());
    } catch (const pymfn::InvalidArgument& e) {
      py::set_error(invalid_argument, e.what());
    } catch (const pymfn::Error& e) {
      py::set_error(error, e.what());
    }
  });

  m.def("build_info", &build_info,
        "What this build contains: version, compiler, engines compiled in, OpenVINO version and the ACL "
        "mode ('real' = CANN, 'emulated' = pymfn's emulator, 'off').");

  pymfn_bindings::bind_data(m);
  pymfn_bindings::bind_runner(m);
  pymfn_bindings::bind_engines(m);
#ifdef PYMFN_WITH_ACL
  pymfn_bindings::bind_acl(m);
#endif
}
