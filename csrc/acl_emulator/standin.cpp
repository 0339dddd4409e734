// Source of the empty libacl_cblas.so and libacl_dvpp.so the emulator build ships beside libascendcl.so.
//
// Why: Ascend sample programs name CANN's libraries on their link line (`-lascendcl -lacl_dvpp`). The emulator
// implements neither cblas nor DVPP; these stand-ins let such a program link unchanged. A call into either
// API still fails at link time with an undefined symbol: nothing is faked.
