/* The one way the addon's N-API entry points report a failed system call: a JavaScript Error
 * whose code is the errno's name (ECONNRESET, EMFILE, ...), as Node's own errors carry. */
#ifndef TAAS_NAPI_ERRORS_H
#define TAAS_NAPI_ERRORS_H

#include <node_api.h>
#include <stdio.h>
#include <string.h>

static inline napi_value throw_errno(napi_env env, int err, const char *what) {
  const char *name = strerrorname_np(err);
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name != NULL ? name : "EIO", msg);
  return NULL;
}

#endif
