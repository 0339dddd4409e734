// pymfn._core: the module object, typed exceptions and build_info(). Everything else is bound in the
// bind_*.cpp files listed in bindings.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

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

// Messages and paths can carry any bytes a file or directory entry holds. A message becomes text with
// invalid bytes as \xNN escapes; a path decodes like os.fsdecode (surrogateescape) so it still opens.
py::str checked_text(PyObject* decoded) {
  if (decoded == nullptr) {  // only when out of memory: these error handlers accept any bytes
    PyErr_Clear();
    return py::str("<message could not be decoded>");
  }
  return py::reinterpret_steal<py::str>(decoded);
}

py::str message_text(const char* what) {
  return checked_text(PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "backslashreplace"));
}

py::str path_text(const std::string& path) {
  return checked_text(PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
}

// Raises `type(message)` with `.path` set, for the InputError family.
void set_input_error(const py::handle& type, const pymfn::InputError& e) {
  py::object exc = py::reinterpret_borrow<py::object>(type)(message_text(e.what()));
  exc.attr("path") = path_text(e.path());
  PyErr_SetObject(type.ptr(), exc.ptr());
}

void set_error(const py::handle& type, const std::exception& e) {
  py::object exc = py::reinterpret_borrow<py::object>(type)(message_text(e.what()));
  PyErr_SetObject(type.ptr(), exc.ptr());
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
      py::object exc = py::reinterpret_borrow<py::object>(acl_error.ptr())(message_text(e.what()));
      exc.attr("code") = e.code();
      exc.attr("code_name") = e.code_name();
      exc.attr("call") = message_text(e.call().c_str());
      exc.attr("recent_msg") = message_text(e.recent_msg().c_str());
      PyErr_SetObject(acl_error.ptr(), exc.ptr());
    } catch (const pymfn::ShapeMismatch& e) {
      set_input_error(shape_mismatch, e);
    } catch (const pymfn::FormatError& e) {
      set_input_error(format_error, e);
    } catch (const pymfn::InputError& e) {
      set_input_error(input_error, e);
    } catch (const pymfn::EngineError& e) {
      set_error(engine_error, e);
    } catch (const pymfn::InvalidArgument& e) {
      set_error(invalid_argument, e);
    } catch (const pymfn::Error& e) {
      set_error(error, e);
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
