/* Passing descriptors between processes over a Unix stream socket (SCM_RIGHTS), for the
 * hand-over to a new daemon (src/handover/). N-API entry points registered by addon.c. */
#ifndef TAAS_FDPASS_H
#define TAAS_FDPASS_H

#include <node_api.h>

napi_value fdpass_send(napi_env env, napi_callback_info info);
napi_value fdpass_recv(napi_env env, napi_callback_info info);
napi_value fdpass_peer(napi_env env, napi_callback_info info);
napi_value fdpass_dup(napi_env env, napi_callback_info info);
napi_value fdpass_close(napi_env env, napi_callback_info info);
napi_value fdpass_notify(napi_env env, napi_callback_info info);

#endif
