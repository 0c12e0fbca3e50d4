/*
 * Descriptor passing for the hand-over (src/handover/): one frame is an 8-octet header
 * (body length, descriptor count, both u32 big-endian) and a body; the descriptors ride as
 * SCM_RIGHTS on the header's first octet, so a reader that reads exactly one header and one
 * body never takes another frame's descriptors. Both calls are synchronous with a deadline:
 * the hand-over is the one moment the daemon does nothing else, and a peer that stops reading
 * or writing is given up on, never waited for forever.
 *
 *   sendFrame(sock, body: Buffer, fds: number[], timeoutMs)
 *   recvFrame(sock, timeoutMs) -> { body: Buffer, fds: number[] }
 *   peerCred(sock) -> { pid, uid, gid }      SO_PEERCRED of a connected Unix socket
 *   dupFd(fd) -> fd                          F_DUPFD_CLOEXEC
 *   closeFd(fd)
 *   sdNotify(socketPath, message)            one datagram to systemd's NOTIFY_SOCKET ('@' = abstract)
 */
#define _GNU_SOURCE
#include "fdpass.h"
#include "napi_errors.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The kernel's SCM_MAX_FD is 253; JavaScript splits larger sets over several frames. */
#define MAX_FDS 250
/* A frame body larger than this is a protocol error, not a state to allocate for. */
#define MAX_BODY (256u * 1024u * 1024u)

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `ev` on fd until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short ev, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = ev};
    int n = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return -errno;
  }
}

static void close_all(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

/* Sends all of buf; the descriptors go with the first octet. 0 or -errno. */
static int send_all(int sock, const uint8_t *buf, size_t len, const int *fds, int nfds, int64_t deadline) {
  size_t off = 0;
  int fds_sent = nfds == 0;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  while (off < len) {
    struct iovec iov = {.iov_base = (void *)(buf + off), .iov_len = len - off};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (!fds_sent) {
      memset(&ctl, 0, sizeof ctl);
      m.msg_control = ctl.buf;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(sock, POLLOUT, deadline);
        if (rc != 0) return rc;
        continue;
      }
      return -errno;
    }
    fds_sent = 1;
    off += (size_t)n;
  }
  return 0;
}

/* Reads exactly len octets, collecting any descriptors that come with them. 0 or -errno. */
static int recv_all(int sock, uint8_t *buf, size_t len, int *fds, int *nfds, int max_fds, int64_t deadline) {
  size_t off = 0;
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  } ctl;
  while (off < len) {
    struct iovec iov = {.iov_base = buf + off, .iov_len = len - off};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(sock, POLLIN, deadline);
        if (rc != 0) return rc;
        continue;
      }
      return -errno;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      int *got = (int *)CMSG_DATA(c);
      for (int i = 0; i < k; i++) {
        if (*nfds < max_fds) fds[(*nfds)++] = got[i];
        else close(got[i]); /* more than announced: a protocol error, nothing leaks */
      }
    }
    if (m.msg_flags & MSG_CTRUNC) return -EPROTO;
    if (n == 0) return -ECONNRESET;
    off += (size_t)n;
  }
  return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

napi_value fdpass_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t sock, timeout;
  void *body = NULL;
  size_t len = 0;
  bool is_buf = false, is_arr = false;
  uint32_t nfds = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || get_i32(env, argv[0], &sock) != 0 ||
      napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf || napi_get_buffer_info(env, argv[1], &body, &len) != napi_ok ||
      napi_is_array(env, argv[2], &is_arr) != napi_ok || !is_arr || napi_get_array_length(env, argv[2], &nfds) != napi_ok ||
      get_i32(env, argv[3], &timeout) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "sendFrame(sock, body, fds, timeoutMs)");
    return NULL;
  }
  if (nfds > MAX_FDS || len > MAX_BODY) return throw_errno(env, E2BIG, "sendFrame");
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || get_i32(env, v, &fds[i]) != 0) {
      napi_throw_type_error(env, "TAAS_INTERNAL", "fds must be numbers");
      return NULL;
    }
  }
  uint8_t hdr[8];
  uint32_t l = (uint32_t)len;
  hdr[0] = (uint8_t)(l >> 24), hdr[1] = (uint8_t)(l >> 16), hdr[2] = (uint8_t)(l >> 8), hdr[3] = (uint8_t)l;
  hdr[4] = (uint8_t)(nfds >> 24), hdr[5] = (uint8_t)(nfds >> 16), hdr[6] = (uint8_t)(nfds >> 8), hdr[7] = (uint8_t)nfds;
  int64_t deadline = now_ms() + timeout;
  int rc = send_all(sock, hdr, sizeof hdr, fds, (int)nfds, deadline);
  if (rc == 0 && len > 0) rc = send_all(sock, body, len, NULL, 0, deadline);
  if (rc != 0) return throw_errno(env, -rc, "sendFrame");
  return NULL;
}

napi_value fdpass_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t sock, timeout;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || get_i32(env, argv[0], &sock) != 0 ||
      get_i32(env, argv[1], &timeout) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "recvFrame(sock, timeoutMs)");
    return NULL;
  }
  int64_t deadline = now_ms() + timeout;
  int fds[MAX_FDS];
  int nfds = 0;
  uint8_t hdr[8];
  int rc = recv_all(sock, hdr, sizeof hdr, fds, &nfds, MAX_FDS, deadline);
  uint32_t len = 0, want = 0;
  if (rc == 0) {
    len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    want = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
    if (len > MAX_BODY || want > MAX_FDS) rc = -EPROTO;
  }
  uint8_t *body = NULL;
  if (rc == 0 && len > 0) {
    body = malloc(len);
    if (body == NULL) rc = -ENOMEM;
    else rc = recv_all(sock, body, len, fds, &nfds, MAX_FDS, deadline);
  }
  if (rc == 0 && (uint32_t)nfds != want) rc = -EPROTO;
  napi_value out, buf, arr;
  if (rc != 0 || napi_create_object(env, &out) != napi_ok || napi_create_buffer_copy(env, len, len ? (const void *)body : (const void *)"", NULL, &buf) != napi_ok ||
      napi_create_array_with_length(env, (size_t)nfds, &arr) != napi_ok) {
    free(body);
    close_all(fds, nfds);
    return throw_errno(env, rc != 0 ? -rc : ENOMEM, "recvFrame");
  }
  free(body);
  for (int i = 0; i < nfds; i++) {
    napi_value v;
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, (uint32_t)i, v);
  }
  napi_set_named_property(env, out, "body", buf);
  napi_set_named_property(env, out, "fds", arr);
  return out;
}

napi_value fdpass_peer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  int32_t sock;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || get_i32(env, argv[0], &sock) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "peerCred(sock)");
    return NULL;
  }
  struct ucred cr;
  socklen_t l = sizeof cr;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0) return throw_errno(env, errno, "peerCred");
  napi_create_object(env, &out);
  napi_create_int32(env, cr.pid, &v);
  napi_set_named_property(env, out, "pid", v);
  napi_create_uint32(env, cr.uid, &v);
  napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, cr.gid, &v);
  napi_set_named_property(env, out, "gid", v);
  return out;
}

napi_value fdpass_dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || get_i32(env, argv[0], &fd) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "dupFd(fd)");
    return NULL;
  }
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return throw_errno(env, errno, "dupFd");
  napi_create_int32(env, d, &out);
  return out;
}

napi_value fdpass_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || get_i32(env, argv[0], &fd) != 0) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "closeFd(fd)");
    return NULL;
  }
  if (fd >= 0) close(fd);
  return NULL;
}

/* Sent by the process that is to be the service's main process: alive and in the unit's
 * cgroup when systemd reads the datagram, so it is attributed (systemd-notify's own pid may be
 * gone by then). */
napi_value fdpass_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char msg[512];
  size_t plen = 0, mlen = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &mlen) != napi_ok) {
    napi_throw_type_error(env, "TAAS_INTERNAL", "sdNotify(socketPath, message)");
    return NULL;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (plen == 0 || plen >= sizeof sa.sun_path) return throw_errno(env, EINVAL, "sdNotify");
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "sdNotify");
  ssize_t n = sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, err, "sdNotify");
  return NULL;
}
