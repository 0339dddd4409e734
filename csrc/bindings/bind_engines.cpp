#include "bindings/bindings.h"

namespace pymfn_bindings {

void bind_engines(py::module_& m) {}

}  // namespace pymfn_bindings
