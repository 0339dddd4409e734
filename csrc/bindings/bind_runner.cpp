#include "bindings/bindings.h"

namespace pymfn_bindings {

void bind_runner(py::module_& m) {}

}  // namespace pymfn_bindings
