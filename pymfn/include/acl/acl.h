/*
 * acl/acl.h -- entry header of pymfn's AscendCL declarations (see acl_base.h for why they exist): process
 * lifecycle, interface version and the last error message, plus acl_rt.h and acl_mdl.h. A client built with
 * `python -m pymfn acl-config --cflags --libs`, or against the toolkit root of `acl-config --toolkit-root`,
 * includes this unchanged. CANN's acl.h also includes acl_op.h (single-operator execution), which pymfn does
 * not provide.
 */
#ifndef PYMFN_ACL_ACL_H_
#define PYMFN_ACL_ACL_H_

#include "acl_base.h"
#include "acl_mdl.h"
#include "acl_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The AscendCL interface version aclrtGetVersion reports for the emulator: pymfn's own numbering (CANN's
 * headers of this surface say 1.10.0). */
#define ACL_MAJOR_VERSION 1
#define ACL_MINOR_VERSION 0
#define ACL_PATCH_VERSION 0

ACL_FUNC_VISIBILITY aclError aclInit(const char *configPath);
ACL_FUNC_VISIBILITY aclError aclFinalize(void);
ACL_FUNC_VISIBILITY aclError aclrtGetVersion(int32_t *majorVersion, int32_t *minorVersion, int32_t *patchVersion);
/* The calling thread's most recent failure, then cleared; "" when there is none. */
ACL_FUNC_VISIBILITY const char *aclGetRecentErrMsg(void);

#ifdef __cplusplus
}
#endif

#endif /* PYMFN_ACL_ACL_H_ */
