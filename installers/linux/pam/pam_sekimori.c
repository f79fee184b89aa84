/*
 * pam_sekimori.so — the TOTP step of login, display managers and screen lockers.
 *
 * Prompts 「認証コード: 」 through the PAM conversation (echo off) and asks the Sekimori agent
 * over a Unix socket: HTTP/1.1 "POST /mfa/verify" with a small JSON body, answer accepted only
 * when the status is 200 and the body starts with {"result":"accept".
 * Running as root (login, display managers) it uses the agent's root-only socket. Running as a
 * user (screen lockers such as xscreensaver, mate-/cinnamon-screensaver check the password as the
 * locked user) it uses the agent's unlock socket, where the agent reads the caller's uid from the
 * kernel (SO_PEERCRED) and verifies codes for that uid's own account only.
 * Everything else — refusal, timeout, garbled answer, a socket we may not use — is PAM_AUTH_ERR
 * (fail closed). The one exception: the agent is really not running (no socket: ENOENT; nobody
 * listening: ECONNREFUSED) AND it has left its root-owned break-glass marker next to that socket
 * (policy mfa.breakGlass); then the password alone decides. A permission failure (EACCES, EPERM)
 * is a refusal, never "unreachable", so loosened directories cannot turn break-glass on.
 * It never sets PAM_AUTHTOK: the code is not a password and must not reach later modules.
 *
 * Arguments:  socket=PATH         agent socket, used as root (default /var/lib/sekimori-agent/agent.sock)
 *             unlock_socket=PATH  unlock socket, used as any other user (default /run/sekimori-agent/unlock.sock)
 *             timeout=SECONDS     whole exchange, 1–30 (default 5)
 *             prompt=TEXT         override the prompt (single word, no spaces)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define PAM_SM_AUTH
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

/* Built with -fvisibility=hidden: only the PAM entry points are exported. */
#define SEKIMORI_EXPORT __attribute__((visibility("default")))

#define DEFAULT_SOCKET "/var/lib/sekimori-agent/agent.sock"
#define DEFAULT_UNLOCK_SOCKET "/run/sekimori-agent/unlock.sock"
#define BREAK_GLASS_NAME "mfa-break-glass"
#define MAX_FIELD 64      /* user names and codes longer than this are not sent as typed */
#define MAX_REPLY 4096    /* the agent's answer is small; anything longer is cut and judged as is */
#define DEFAULT_PROMPT "認証コード: "

struct options {
  char socket_path[108]; /* sizeof(sun_path) */
  char unlock_path[108];
  int timeout_ms;
  const char *prompt;
};

/* An unusable path leaves the option empty: no socket, fail closed. */
static void path_arg(pam_handle_t *pamh, const char *name, const char *v, char *out, size_t cap) {
  if (strlen(v) == 0 || strlen(v) >= cap || v[0] != '/') {
    pam_syslog(pamh, LOG_ERR, "%s must be an absolute path shorter than %zu bytes", name, cap);
    out[0] = '\0';
  } else {
    snprintf(out, cap, "%s", v);
  }
}

static void parse_args(pam_handle_t *pamh, int argc, const char **argv, struct options *o) {
  snprintf(o->socket_path, sizeof o->socket_path, "%s", DEFAULT_SOCKET);
  snprintf(o->unlock_path, sizeof o->unlock_path, "%s", DEFAULT_UNLOCK_SOCKET);
  o->timeout_ms = 5000;
  o->prompt = DEFAULT_PROMPT;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "socket=", 7) == 0) {
      path_arg(pamh, "socket=", a + 7, o->socket_path, sizeof o->socket_path);
    } else if (strncmp(a, "unlock_socket=", 14) == 0) {
      path_arg(pamh, "unlock_socket=", a + 14, o->unlock_path, sizeof o->unlock_path);
    } else if (strncmp(a, "timeout=", 8) == 0) {
      long t = strtol(a + 8, NULL, 10);
      if (t >= 1 && t <= 30) o->timeout_ms = (int)t * 1000;
    } else if (strncmp(a, "prompt=", 7) == 0 && a[7] != '\0') {
      o->prompt = a + 7;
    } else {
      pam_syslog(pamh, LOG_WARNING, "unknown option ignored");
    }
  }
}

/* Appends s as the contents of a JSON string: at most MAX_FIELD bytes of input, printable ASCII
 * kept, quote and backslash escaped, everything else replaced by '?'. An over-long value becomes
 * "!overlong" so that a cut-off string can never turn into a valid code. */
static int json_field(char *out, size_t cap, size_t *len, const char *s) {
  if (s == NULL) s = "";
  size_t n = strnlen(s, MAX_FIELD + 1);
  if (n > MAX_FIELD) s = "!overlong", n = 9;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char buf[3] = {0};
    if (c == '"' || c == '\\') { buf[0] = '\\'; buf[1] = (char)c; }
    else if (c >= 0x20 && c < 0x7f) buf[0] = (char)c;
    else buf[0] = '?';
    size_t bl = strlen(buf);
    if (*len + bl >= cap) return -1;
    memcpy(out + *len, buf, bl);
    *len += bl;
  }
  out[*len] = '\0';
  return 0;
}

static int append(char *out, size_t cap, size_t *len, const char *s) {
  size_t n = strlen(s);
  if (*len + n >= cap) return -1;
  memcpy(out + *len, s, n);
  *len += n;
  out[*len] = '\0';
  return 0;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits for fd to be ready until the deadline; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 0;
    return 1;
  }
}

enum outcome { ACCEPT, REJECT, DENIED, UNREACHABLE };

/* Only these mean "the agent is not running". Everything else — EACCES and EPERM above all, but
 * also EMFILE from a caller who lowered our limits — must never open the break-glass path. */
static int agent_gone(int err) { return err == ENOENT || err == ECONNREFUSED; }

/* One request over the socket at path. UNREACHABLE only when the agent is really not running
 * (agent_gone); DENIED when we may not use the socket; anything that goes wrong after connecting
 * is a REJECT. */
static enum outcome ask_agent(pam_handle_t *pamh, const char *path, int timeout_ms, const char *body, int *locked) {
  *locked = 0;
  if (path[0] == '\0') return REJECT;
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (agent_gone(errno)) return UNREACHABLE;
    pam_syslog(pamh, LOG_ERR, "cannot reach %s: %m: refusing", path);
    return DENIED;
  }
  /* The socket must be the agent's: a socket owned by root (or by the user running the stack). */
  if (!S_ISSOCK(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid())) {
    pam_syslog(pamh, LOG_ERR, "refusing %s: not a socket owned by root", path);
    return REJECT;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    pam_syslog(pamh, LOG_ERR, "socket: %m: refusing");
    return REJECT;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, strlen(path));
  long deadline = now_ms() + timeout_ms;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    if (err != EINPROGRESS && err != EAGAIN) {
      close(fd);
      if (agent_gone(err)) return UNREACHABLE;
      errno = err;
      pam_syslog(pamh, LOG_ERR, "connect %s: %m: refusing", path);
      return DENIED;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (wait_fd(fd, POLLOUT, deadline) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
      close(fd);
      return agent_gone(soerr) ? UNREACHABLE : REJECT;
    }
  }
  /* The kernel says who is listening (recorded at listen()): only root's agent, or the user
   * running the stack, may answer. Closes the gap between lstat and connect. */
  struct ucred srv;
  socklen_t cl = sizeof srv;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &srv, &cl) != 0 || cl != sizeof srv || (srv.uid != 0 && srv.uid != geteuid())) {
    pam_syslog(pamh, LOG_ERR, "refusing %s: not served by root", path);
    close(fd);
    return REJECT;
  }

  char req[1024];
  int hl = snprintf(req, sizeof req,
                    "POST /mfa/verify HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pam_sekimori\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                    strlen(body), body);
  if (hl < 0 || (size_t)hl >= sizeof req) {
    close(fd);
    return REJECT;
  }
  size_t sent = 0;
  while (sent < (size_t)hl) {
    if (wait_fd(fd, POLLOUT, deadline) != 1) { close(fd); return REJECT; }
    ssize_t w = send(fd, req + sent, (size_t)hl - sent, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) { close(fd); return REJECT; }
    sent += (size_t)w;
  }

  char reply[MAX_REPLY + 1];
  size_t got = 0;
  while (got < MAX_REPLY) {
    int r = wait_fd(fd, POLLIN, deadline);
    if (r != 1) {
      if (r == 0) pam_syslog(pamh, LOG_ERR, "agent did not answer within %d ms", timeout_ms);
      close(fd);
      return REJECT;
    }
    ssize_t n = recv(fd, reply + got, MAX_REPLY - got, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) { close(fd); return REJECT; }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  reply[got] = '\0';
  if (memchr(reply, '\0', got) != NULL) return REJECT; /* embedded NUL: not our agent's answer */

  if (strncmp(reply, "HTTP/1.1 200 ", 13) != 0 && strncmp(reply, "HTTP/1.0 200 ", 13) != 0) return REJECT;
  char *hdr_end = strstr(reply, "\r\n\r\n");
  if (hdr_end == NULL) return REJECT;
  char *b = hdr_end + 4;
  /* A chunked body starts with a hex size line: skip it (the whole answer is one small chunk). */
  if (strcasestr(reply, "\r\ntransfer-encoding: chunked") != NULL && strcasestr(reply, "\r\ntransfer-encoding: chunked") < hdr_end) {
    char *eol = strstr(b, "\r\n");
    if (eol == NULL || eol - b > 8) return REJECT;
    b = eol + 2;
  }
  if (strstr(b, "\"reason\":\"locked\"") != NULL) *locked = 1;
  return strncmp(b, "{\"result\":\"accept\"", 18) == 0 ? ACCEPT : REJECT;
}

/* The agent leaves this marker (root-owned, not writable by others) next to each of its sockets
 * only while policy mfa.breakGlass is on. The folder must be root's and closed to others' writes,
 * so nobody else can have put (or linked) a marker there. */
static int break_glass_allowed(const char *socket_path) {
  char path[256];
  const char *slash = strrchr(socket_path, '/');
  if (slash == NULL) return 0;
  int dl = (int)(slash - socket_path);
  struct stat st;
  if (snprintf(path, sizeof path, "%.*s", dl > 0 ? dl : 1, socket_path) >= (int)sizeof path) return 0;
  if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) return 0;
  if (snprintf(path, sizeof path, "%.*s/%s", dl, socket_path, BREAK_GLASS_NAME) >= (int)sizeof path) return 0;
  if (lstat(path, &st) != 0) return 0;
  return S_ISREG(st.st_mode) && st.st_uid == 0 && (st.st_mode & 022) == 0;
}

static void say(pam_handle_t *pamh, int style, const char *msg) {
  const struct pam_conv *conv = NULL;
  if (pam_get_item(pamh, PAM_CONV, (const void **)&conv) != PAM_SUCCESS || conv == NULL || conv->conv == NULL) return;
  struct pam_message m = {.msg_style = style, .msg = msg};
  const struct pam_message *mp = &m;
  struct pam_response *resp = NULL;
  conv->conv(1, &mp, &resp, conv->appdata_ptr);
  if (resp != NULL) {
    if (resp->resp != NULL) free(resp->resp);
    free(resp);
  }
}

SEKIMORI_EXPORT PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
  struct options o;
  parse_args(pamh, argc, argv, &o);

  const char *user = NULL;
  if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || user[0] == '\0') return PAM_AUTH_ERR;
  size_t ul = strnlen(user, MAX_FIELD + 1);
  if (ul > MAX_FIELD) return PAM_AUTH_ERR;
  for (size_t i = 0; i < ul; i++) {
    char c = user[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) {
      pam_syslog(pamh, LOG_NOTICE, "user name with characters outside [A-Za-z0-9._@-] refused");
      return PAM_AUTH_ERR;
    }
  }

  char *code = NULL;
  int pr = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &code, "%s", o.prompt);
  if (pr != PAM_SUCCESS || code == NULL) {
    if (code != NULL) free(code);
    return pr == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_AUTH_ERR;
  }

  const void *item = NULL;
  const char *service = NULL, *tty = NULL, *rhost = NULL;
  if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS) service = item;
  if (pam_get_item(pamh, PAM_TTY, &item) == PAM_SUCCESS) tty = item;
  if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS) rhost = item;

  char body[512];
  size_t bl = 0;
  int bad = append(body, sizeof body, &bl, "{\"user\":\"") || json_field(body, sizeof body, &bl, user) ||
            append(body, sizeof body, &bl, "\",\"code\":\"") || json_field(body, sizeof body, &bl, code) ||
            append(body, sizeof body, &bl, "\",\"service\":\"") || json_field(body, sizeof body, &bl, service) ||
            append(body, sizeof body, &bl, "\",\"tty\":\"") || json_field(body, sizeof body, &bl, tty) ||
            append(body, sizeof body, &bl, "\",\"rhost\":\"") || json_field(body, sizeof body, &bl, rhost) ||
            append(body, sizeof body, &bl, "\"}");
  /* The code is wiped as soon as it is in the request. */
  explicit_bzero(code, strlen(code));
  free(code);
  if (bad) {
    explicit_bzero(body, sizeof body);
    return PAM_AUTH_ERR;
  }

  /* Root reaches the root-only socket; a user process (a screen locker) may use only the unlock
   * socket, where the agent verifies for that user's own account alone. Effective uid: a
   * set-uid-root program such as su has root's reach and keeps using the root socket. */
  const char *path = geteuid() == 0 ? o.socket_path : o.unlock_path;
  int locked = 0;
  enum outcome r = ask_agent(pamh, path, o.timeout_ms, body, &locked);
  explicit_bzero(body, sizeof body);
  switch (r) {
    case ACCEPT:
      return PAM_SUCCESS;
    case UNREACHABLE:
      if (break_glass_allowed(path)) {
        pam_syslog(pamh, LOG_WARNING, "agent unreachable: break-glass marker present, TOTP step skipped for %s", user);
        return PAM_SUCCESS;
      }
      pam_syslog(pamh, LOG_ERR, "agent unreachable at %s: refusing (fail closed)", path);
      if (!(flags & PAM_SILENT)) say(pamh, PAM_ERROR_MSG, "認証サービスに接続できません / verification service unavailable");
      return PAM_AUTH_ERR;
    case DENIED:
      if (!(flags & PAM_SILENT)) say(pamh, PAM_ERROR_MSG, "認証サービスを利用する権限がありません / not permitted to use the verification service");
      return PAM_AUTH_ERR;
    default:
      if (locked && !(flags & PAM_SILENT)) say(pamh, PAM_ERROR_MSG, "一時的にロックされています / temporarily locked");
      return PAM_AUTH_ERR;
  }
}

SEKIMORI_EXPORT PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
  (void)pamh;
  (void)flags;
  (void)argc;
  (void)argv;
  return PAM_SUCCESS;
}
