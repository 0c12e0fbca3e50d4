/*
 * N-API binding of the relay core (relay.h) for src/relay/engines/splice.ts.
 *
 *   create(onDone, threads, pipeSize, poolMax) -> engine
 *   pair(engine, id, fdClient, fdResponder, headClient|null, headResponder|null, idleMs[, bucketUp|null, bucketDown|null])
 *   bucket(rate, burst) -> bucket   a label's bandwidth in one direction (bucket.h), for pair()
 *   close(engine, id, reason) · closeAll(engine, reason) · ref(engine, bool)
 *   stats(engine) -> { pairings, pipesInUse, pipesPooled, pipeSize, threads }
 *   setUserTimeout(fd, ms)   TCP_USER_TIMEOUT, which Node cannot set itself
 *   detachAll(engine) -> [{ id, fdClient, fdResponder, up, down, pendingUp, pendingDown }]
 *                            the hand-over to a new daemon (relay_detach_all)
 *   shutdown(engine)
 *   sendFrame · recvFrame · peerCred · dupFd · closeFd   descriptor passing (fdpass.c)
 *
 * onDone(id, bytesUp, bytesDown, reason, errnoName|undefined) runs on the JavaScript thread,
 * delivered from the worker threads through a threadsafe function.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "fdpass.h"
#include "napi_errors.h"
#include "relay.h"

/*
 * Lifetime: the engine is referenced by its JavaScript external and by the threadsafe function
 * (whose finalizer may run after the external's, e.g. after shutdown(), or before it, at
 * environment teardown when Node closes every threadsafe function). Each finalizer drops one
 * reference; the last one frees. Whichever comes first stops the relay, so no worker thread
 * calls into a threadsafe function that is gone.
 */
typedef struct engine {
  relay_t *relay;
  napi_threadsafe_function tsfn;
  int destroyed; /* relay stopped */
  int tsfn_done; /* threadsafe function finalized: never release it again */
  int refs;
} engine_t;

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), "TAAS_INTERNAL", #call);     \
      return NULL;                                         \
    }                                                      \
  } while (0)

/* Worker thread -> JavaScript thread. */
static void on_done_native(void *ctx, relay_result_t *res) {
  engine_t *e = ctx;
  if (napi_call_threadsafe_function(e->tsfn, res, napi_tsfn_nonblocking) != napi_ok) free(res);
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  relay_result_t *res = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[5], undef;
    napi_get_undefined(env, &undef);
    napi_create_int64(env, res->id, &argv[0]);
    napi_create_double(env, (double)res->up, &argv[1]);
    napi_create_double(env, (double)res->down, &argv[2]);
    napi_create_int32(env, res->reason, &argv[3]);
    const char *name = res->err != 0 ? strerrorname_np(res->err) : NULL;
    if (name != NULL) napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &argv[4]);
    else argv[4] = undef;
    napi_call_function(env, undef, cb, 5, argv, NULL);
  }
  free(res);
}

static void engine_unref(engine_t *e) {
  if (--e->refs == 0) free(e);
}

static void engine_stop(engine_t *e) {
  if (e->destroyed) return;
  e->destroyed = 1;
  if (e->relay != NULL) relay_destroy(e->relay); /* joins the workers; their last results are queued */
  e->relay = NULL;
  if (!e->tsfn_done) napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
}

/* The external was collected (or the environment is being torn down). */
static void engine_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  engine_t *e = data;
  engine_stop(e);
  engine_unref(e);
}

/* The threadsafe function is finalized: after the last release, or when Node tears down. */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  engine_t *e = data;
  e->tsfn_done = 1;
  engine_stop(e); /* workers still running now find the function closing, not gone */
  engine_unref(e);
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, engine_t **e) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "wrong number of arguments");
    return NULL;
  }
  void *ptr = NULL;
  if (napi_get_value_external(env, argv[0], &ptr) != napi_ok || ptr == NULL) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "not an engine");
    return NULL;
  }
  *e = ptr;
  if ((*e)->destroyed) {
    napi_throw_error(env, "TAAS_INTERNAL", "engine already shut down");
    return NULL;
  }
  return argv[0];
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name, ext;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "create(onDone, threads, pipeSize, poolMax)");
    return NULL;
  }
  int32_t threads = 1, pool_max = 0;
  int64_t pipe_size = 0;
  CHECK(env, napi_get_value_int32(env, argv[1], &threads));
  CHECK(env, napi_get_value_int64(env, argv[2], &pipe_size));
  CHECK(env, napi_get_value_int32(env, argv[3], &pool_max));
  CHECK(env, napi_create_string_utf8(env, "taas_splice_done", NAPI_AUTO_LENGTH, &name));
  engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_errno(env, ENOMEM, "create");
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, e, tsfn_finalize, e, call_js, &e->tsfn) != napi_ok) {
    free(e);
    napi_throw_error(env, "TAAS_INTERNAL", "cannot create the completion channel");
    return NULL;
  }
  e->refs = 2; /* the threadsafe function's, and the external's made below */
  /* Unreferenced until a pairing is live: an idle engine does not keep the process alive. */
  napi_unref_threadsafe_function(env, e->tsfn);
  relay_opts_t opts = {.threads = threads, .pipe_size = (size_t)(pipe_size > 0 ? pipe_size : 0), .pool_max = pool_max};
  int rc = relay_create(&opts, on_done_native, e, &e->relay);
  if (rc != 0) e->relay = NULL;
  if (rc != 0 || napi_create_external(env, e, engine_finalize, NULL, &ext) != napi_ok) {
    engine_stop(e); /* releases the threadsafe function; its finalizer frees e */
    e->refs--;      /* no external holds it */
    if (rc != 0) return throw_errno(env, -rc, "create");
    napi_throw_error(env, "TAAS_INTERNAL", "cannot wrap the engine");
    return NULL;
  }
  return ext;
}

/* Marks bucket externals, so that pair() never takes another external for one. */
static const napi_type_tag BUCKET_TAG = {0x7461617362756b74ULL, 0x62616e6477696474ULL};

static void bucket_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  rbucket_unref(data); /* pairings still using it hold their own references */
}

static napi_value js_bucket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ext;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t rate = 0, burst = 0;
  if (argc < 2 || napi_get_value_int64(env, argv[0], &rate) != napi_ok || napi_get_value_int64(env, argv[1], &burst) != napi_ok || rate <= 0 || burst <= 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "bucket(rate, burst) with both > 0");
    return NULL;
  }
  rbucket_t *b = rbucket_new((uint64_t)rate, (uint64_t)burst);
  if (b == NULL) return throw_errno(env, ENOMEM, "bucket");
  if (napi_create_external(env, b, bucket_finalize, NULL, &ext) != napi_ok || napi_type_tag_object(env, ext, &BUCKET_TAG) != napi_ok) {
    rbucket_unref(b);
    napi_throw_error(env, "TAAS_INTERNAL", "cannot wrap the bucket");
    return NULL;
  }
  return ext;
}

/* A bucket external -> its bucket; null/undefined -> NULL with 0; anything else -1. */
static int get_bucket(napi_env env, napi_value v, rbucket_t **out) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  bool tagged = false;
  if (t != napi_external || napi_check_object_type_tag(env, v, &BUCKET_TAG, &tagged) != napi_ok || !tagged) return -1;
  void *ptr = NULL;
  if (napi_get_value_external(env, v, &ptr) != napi_ok || ptr == NULL) return -1;
  *out = ptr;
  return 0;
}

/* Buffer or null/undefined -> pointer and length (0 for none). */
static int get_head(napi_env env, napi_value v, void **data, size_t *len) {
  napi_valuetype t;
  *data = NULL;
  *len = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return -1;
  return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

static napi_value js_pair(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  engine_t *e;
  if (get_args(env, info, 7, argv, &e) == NULL) return NULL;
  size_t argc = 9; /* the buckets are optional: N-API gives undefined for those not passed */
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t id;
  int32_t fdc, fdr;
  uint32_t idle;
  void *hc, *hr;
  size_t lc, lr;
  CHECK(env, napi_get_value_int64(env, argv[1], &id));
  CHECK(env, napi_get_value_int32(env, argv[2], &fdc));
  CHECK(env, napi_get_value_int32(env, argv[3], &fdr));
  CHECK(env, napi_get_value_uint32(env, argv[6], &idle));
  if (get_head(env, argv[4], &hc, &lc) != 0 || get_head(env, argv[5], &hr, &lr) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "head must be a Buffer or null");
    return NULL;
  }
  rbucket_t *bu, *bd;
  if (get_bucket(env, argv[7], &bu) != 0 || get_bucket(env, argv[8], &bd) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "bucketUp and bucketDown must be buckets or null");
    return NULL;
  }
  int rc = relay_pair_limited(e->relay, id, fdc, fdr, hc, lc, hr, lr, idle, bu, bd);
  if (rc != 0) return throw_errno(env, -rc, "pair");
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  engine_t *e;
  if (get_args(env, info, 3, argv, &e) == NULL) return NULL;
  int64_t id;
  int32_t reason;
  CHECK(env, napi_get_value_int64(env, argv[1], &id));
  CHECK(env, napi_get_value_int32(env, argv[2], &reason));
  relay_close(e->relay, id, reason);
  return NULL;
}

static napi_value js_close_all(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  engine_t *e;
  if (get_args(env, info, 2, argv, &e) == NULL) return NULL;
  int32_t reason;
  CHECK(env, napi_get_value_int32(env, argv[1], &reason));
  relay_close_all(e->relay, reason);
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  engine_t *e;
  if (get_args(env, info, 2, argv, &e) == NULL) return NULL;
  bool on = false;
  CHECK(env, napi_get_value_bool(env, argv[1], &on));
  if (on) napi_ref_threadsafe_function(env, e->tsfn);
  else napi_unref_threadsafe_function(env, e->tsfn);
  return NULL;
}

static void set_num(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], obj;
  engine_t *e;
  if (get_args(env, info, 1, argv, &e) == NULL) return NULL;
  relay_stats_t s;
  relay_stats(e->relay, &s);
  CHECK(env, napi_create_object(env, &obj));
  set_num(env, obj, "pairings", (double)s.pairings);
  set_num(env, obj, "pipesInUse", (double)s.pipes_in_use);
  set_num(env, obj, "pipesPooled", (double)s.pipes_pooled);
  set_num(env, obj, "pipeSize", (double)s.pipe_size);
  set_num(env, obj, "threads", (double)s.threads);
  return obj;
}

static napi_value js_set_user_timeout(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t ms;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_uint32(env, argv[1], &ms) != napi_ok) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "setUserTimeout(fd, ms)");
    return NULL;
  }
  int rc = relay_set_user_timeout(fd, ms);
  if (rc != 0) return throw_errno(env, -rc, "setUserTimeout");
  return NULL;
}

static napi_value pending_buffer(napi_env env, uint8_t *data, size_t len) {
  napi_value v;
  if (data == NULL || len == 0) {
    napi_get_null(env, &v);
    return v;
  }
  if (napi_create_buffer_copy(env, len, data, NULL, &v) != napi_ok) napi_get_null(env, &v);
  return v;
}

static napi_value js_detach_all(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr;
  engine_t *e;
  if (get_args(env, info, 1, argv, &e) == NULL) return NULL;
  relay_detached_t *list = NULL;
  size_t n = 0;
  (void)relay_detach_all(e->relay, &list, &n); /* an error only means some pairings ended instead */
  napi_create_array_with_length(env, n, &arr);
  for (size_t i = 0; i < n; i++) {
    relay_detached_t *d = &list[i];
    napi_value o, v;
    napi_create_object(env, &o);
    napi_create_int64(env, d->id, &v);
    napi_set_named_property(env, o, "id", v);
    napi_create_int32(env, d->fd_client, &v);
    napi_set_named_property(env, o, "fdClient", v);
    napi_create_int32(env, d->fd_responder, &v);
    napi_set_named_property(env, o, "fdResponder", v);
    napi_create_double(env, (double)d->up, &v);
    napi_set_named_property(env, o, "up", v);
    napi_create_double(env, (double)d->down, &v);
    napi_set_named_property(env, o, "down", v);
    napi_set_named_property(env, o, "pendingUp", pending_buffer(env, d->pending_up, d->len_up));
    napi_set_named_property(env, o, "pendingDown", pending_buffer(env, d->pending_down, d->len_down));
    napi_set_element(env, arr, (uint32_t)i, o);
    free(d->pending_up);
    free(d->pending_down);
  }
  free(list);
  return arr;
}

static napi_value js_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e;
  if (get_args(env, info, 1, argv, &e) == NULL) return NULL;
  engine_stop(e);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"pair", NULL, js_pair, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"closeAll", NULL, js_close_all, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"shutdown", NULL, js_shutdown, NULL, NULL, NULL, napi_default, NULL},
      {"setUserTimeout", NULL, js_set_user_timeout, NULL, NULL, NULL, napi_default, NULL},
      {"detachAll", NULL, js_detach_all, NULL, NULL, NULL, napi_default, NULL},
      {"sendFrame", NULL, fdpass_send, NULL, NULL, NULL, napi_default, NULL},
      {"recvFrame", NULL, fdpass_recv, NULL, NULL, NULL, napi_default, NULL},
      {"peerCred", NULL, fdpass_peer, NULL, NULL, NULL, napi_default, NULL},
      {"dupFd", NULL, fdpass_dup, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, fdpass_close, NULL, NULL, NULL, napi_default, NULL},
      {"sdNotify", NULL, fdpass_notify, NULL, NULL, NULL, napi_default, NULL},
      {"bucket", NULL, js_bucket, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
