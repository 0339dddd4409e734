#include "bindings/bindings.h"

namespace pymfn_bindings {

void bind_acl(py::module_& m) {}

}  // namespace pymfn_bindings
