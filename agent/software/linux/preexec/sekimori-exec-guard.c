/*
 * sekimori-exec-guard: the pre-exec line of Sekimori's unauthorized-software control (issue 14).
 *
 * A root helper started by the agent. It holds a fanotify group with FAN_OPEN_EXEC_PERM marks on
 * the mounts it is given (--mark PATH, repeatable) and answers every exec of a file there with
 * allow or deny BEFORE the program's first instruction runs:
 *   - from an in-memory verdict cache keyed by file identity (dev, inode, ctime sec+nsec): any
 *     write, chmod or rename changes ctime, so a changed file is a new question;
 *   - on a miss it asks the agent (one line on stdout) and waits at most --timeout-ms; when the
 *     agent does not answer in time (or is gone) --fallback applies and is reported.
 * The helper never blocks the terminal: stdout is non-blocking (a line that does not fit is
 * dropped and counted, its question then times out), and every permission event gets an answer
 * within the bound. Children of the agent (its own tools) are allowed: the agent waits for their
 * exec synchronously and would otherwise wait for itself.
 * When the helper dies the kernel allows pending and future execs: the agent's /proc scan and kill
 * stay as the second line, and the agent restarts the helper.
 *
 * Protocol (ASCII lines). Helper -> agent:
 *   READY <pid> <marks>                    marks placed (how many), serving
 *   ERR <stage> <errno> <text>             args|init: fatal, then exit; mark: that mount is not
 *                                          guarded (exit only when no mark could be placed)
 *   Q <id> <pid> <fd> <dev> <ino> <cs> <cns>   a question; the file is /proc/<helper>/fd/<fd> until answered
 *   F <reason> <a|d> <id>                  fallback applied (reason: timeout|full|orphan|error|stop)
 *   D <pid> <dev> <ino> <cs> <cns>         a cached deny was applied
 *   S <hits> <misses> <allowed> <denied> <fallbacks> <dropped> <cached>
 * Agent -> helper:
 *   A <id> <dev> <ino> <cs> <cns> <a|d>    answer (if still pending) and cache it
 *   C <dev> <ino> <cs> <cns> <a|d>         cache only
 *   X                                      flush the cache (the policy changed)
 *   M <hex of a path>                      mark one more mount (one mounted below a watched place later)
 *   S                                      report stats
 * When stdin closes (agent gone) pending questions get the fallback at once, new misses get it
 * too, cached verdicts keep applying, and the helper exits after --orphan-grace-ms.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_MARKS 64
#define MAX_PENDING 256
#define CACHE_SLOTS 16384 /* power of two */
#define CACHE_PROBES 8

struct key {
  uint64_t dev, ino;
  int64_t cs;
  uint32_t cns;
};
struct slot {
  struct key k;
  uint8_t used, allow;
};
struct pending {
  int fd; /* -1 = free */
  uint64_t id;
  struct key k;
  int64_t deadline_ms;
};

static struct slot cache[CACHE_SLOTS];
static struct pending pend[MAX_PENDING];
static int fan = -1;
static int fallback_allow = 0;
static int64_t timeout_ms = 1000, grace_ms = 30000;
static pid_t trusted_parent;
static uint64_t next_id = 1;
static uint64_t n_hits, n_misses, n_allowed, n_denied, n_fallbacks, n_dropped, n_cached;
static volatile sig_atomic_t stop_flag;

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One line to the agent. Never blocks: a full pipe drops the line (counted). */
static void say(const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b, sizeof b - 1, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof b - 1) return;
  b[n++] = '\n';
  if (write(STDOUT_FILENO, b, (size_t)n) != n) n_dropped++;
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27; x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
static uint64_t key_hash(const struct key *k) {
  return mix(k->dev ^ mix(k->ino ^ mix((uint64_t)k->cs ^ ((uint64_t)k->cns << 32))));
}
static int key_eq(const struct key *a, const struct key *b) {
  return a->dev == b->dev && a->ino == b->ino && a->cs == b->cs && a->cns == b->cns;
}

/* 1 allow, 0 deny, -1 miss */
static int cache_get(const struct key *k) {
  uint64_t h = key_hash(k);
  for (unsigned i = 0; i < CACHE_PROBES; i++) {
    struct slot *s = &cache[(h + i) & (CACHE_SLOTS - 1)];
    if (s->used && key_eq(&s->k, k)) return s->allow;
  }
  return -1;
}

/* Bounded memory: when all probe slots are taken the first one is replaced. */
static void cache_put(const struct key *k, int allow) {
  uint64_t h = key_hash(k);
  struct slot *victim = &cache[h & (CACHE_SLOTS - 1)];
  for (unsigned i = 0; i < CACHE_PROBES; i++) {
    struct slot *s = &cache[(h + i) & (CACHE_SLOTS - 1)];
    if (s->used && key_eq(&s->k, k)) { s->allow = (uint8_t)allow; return; }
    if (!s->used) { victim = s; break; }
  }
  if (!victim->used) n_cached++;
  victim->k = *k;
  victim->used = 1;
  victim->allow = (uint8_t)allow;
}

static void respond(int fd, int allow) {
  struct fanotify_response r = {.fd = fd, .response = allow ? FAN_ALLOW : FAN_DENY};
  /* A failed write leaves the event pending until the group closes; nothing better to do. */
  if (write(fan, &r, sizeof r) != (ssize_t)sizeof r) n_dropped++;
  if (allow) n_allowed++; else n_denied++;
  close(fd);
}

static void fall_back(int fd, const char *reason, uint64_t id) {
  n_fallbacks++;
  respond(fd, fallback_allow);
  say("F %s %c %" PRIu64, reason, fallback_allow ? 'a' : 'd', id);
}

/* The parent of pid from /proc/pid/stat (the comm field may hold spaces and parentheses). */
static pid_t parent_of(pid_t pid) {
  char path[64], b[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) return -1;
  b[n] = 0;
  char *p = strrchr(b, ')');
  int pp = -1;
  if (!p || sscanf(p + 1, " %*c %d", &pp) != 1) return -1;
  return (pid_t)pp;
}

static int orphan;
static int64_t orphan_deadline;

static void on_event(const struct fanotify_event_metadata *m) {
  if (!(m->mask & FAN_OPEN_EXEC_PERM)) {
    if (m->fd >= 0) close(m->fd);
    return;
  }
  if (m->fd < 0) return;
  struct stat st;
  if (fstat(m->fd, &st) != 0) { fall_back(m->fd, "error", 0); return; }
  struct key k = {(uint64_t)st.st_dev, (uint64_t)st.st_ino, (int64_t)st.st_ctim.tv_sec, (uint32_t)st.st_ctim.tv_nsec};
  int v = cache_get(&k);
  if (v >= 0) {
    n_hits++;
    if (!v) say("D %d %" PRIu64 " %" PRIu64 " %" PRId64 " %u", (int)m->pid, k.dev, k.ino, k.cs, k.cns);
    respond(m->fd, v);
    return;
  }
  n_misses++;
  if (m->pid == trusted_parent || parent_of(m->pid) == trusted_parent) { respond(m->fd, 1); return; }
  if (orphan) { fall_back(m->fd, "orphan", 0); return; }
  for (int i = 0; i < MAX_PENDING; i++) {
    if (pend[i].fd >= 0) continue;
    pend[i] = (struct pending){.fd = m->fd, .id = next_id++, .k = k, .deadline_ms = now_ms() + timeout_ms};
    say("Q %" PRIu64 " %d %d %" PRIu64 " %" PRIu64 " %" PRId64 " %u", pend[i].id, (int)m->pid, m->fd, k.dev, k.ino, k.cs, k.cns);
    return;
  }
  fall_back(m->fd, "full", 0);
}

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void on_line(char *l) {
  struct key k;
  uint64_t id;
  char v;
  if (l[0] == 'A' && sscanf(l, "A %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNd64 " %u %c", &id, &k.dev, &k.ino, &k.cs, &k.cns, &v) == 6 && (v == 'a' || v == 'd')) {
    cache_put(&k, v == 'a');
    for (int i = 0; i < MAX_PENDING; i++)
      if (pend[i].fd >= 0 && pend[i].id == id) {
        /* The verdict is for the identity we asked about; anything else is not an answer. */
        if (key_eq(&pend[i].k, &k)) { respond(pend[i].fd, v == 'a'); pend[i].fd = -1; }
        break;
      }
  } else if (l[0] == 'C' && sscanf(l, "C %" SCNu64 " %" SCNu64 " %" SCNd64 " %u %c", &k.dev, &k.ino, &k.cs, &k.cns, &v) == 5 && (v == 'a' || v == 'd')) {
    cache_put(&k, v == 'a');
  } else if (l[0] == 'M' && l[1] == ' ') {
    /* The path travels as hex: a mount point may hold spaces or newlines. */
    char path[1024];
    size_t n = 0;
    const char *h = l + 2;
    while (h[0] && h[1] && n < sizeof path - 1) {
      int hi = hexval(h[0]), lo = hexval(h[1]);
      if (hi < 0 || lo < 0) break;
      path[n++] = (char)(hi * 16 + lo);
      h += 2;
    }
    path[n] = 0;
    if (*h == 0 && n > 0 && path[0] == '/' && strlen(path) == n) {
      if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, AT_FDCWD, path) != 0) say("ERR mark %d %s", errno, strerror(errno));
    }
  } else if (l[0] == 'X' && (l[1] == 0 || l[1] == ' ')) {
    memset(cache, 0, sizeof cache);
    n_cached = 0;
  } else if (l[0] == 'S' && (l[1] == 0 || l[1] == ' ')) {
    say("S %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, n_hits, n_misses, n_allowed, n_denied, n_fallbacks, n_dropped, n_cached);
  }
}

static char inbuf[4096];
static size_t inlen;
static int skipping; /* inside an over-long line: discard up to its newline */

/* Returns 0 on EOF (the agent is gone). */
static int read_stdin(void) {
  char b[4096];
  ssize_t n = read(STDIN_FILENO, b, sizeof b);
  if (n == 0) return 0;
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 1 : 0;
  for (ssize_t i = 0; i < n; i++) {
    if (b[i] == '\n') {
      if (!skipping) { inbuf[inlen] = 0; on_line(inbuf); }
      inlen = 0;
      skipping = 0;
    } else if (!skipping) {
      if (inlen >= sizeof inbuf - 1) { skipping = 1; inlen = 0; } else inbuf[inlen++] = b[i];
    }
  }
  return 1;
}

static void expire(int all, const char *reason) {
  int64_t t = now_ms();
  for (int i = 0; i < MAX_PENDING; i++)
    if (pend[i].fd >= 0 && (all || pend[i].deadline_ms <= t)) {
      fall_back(pend[i].fd, reason, pend[i].id);
      pend[i].fd = -1;
    }
}

static int next_timeout(void) {
  int64_t t = now_ms(), d = INT64_MAX;
  for (int i = 0; i < MAX_PENDING; i++)
    if (pend[i].fd >= 0 && pend[i].deadline_ms < d) d = pend[i].deadline_ms;
  if (orphan && orphan_deadline < d) d = orphan_deadline;
  if (d == INT64_MAX) return -1;
  return d <= t ? 0 : (int)(d - t > 60000 ? 60000 : d - t);
}

static void on_signal(int s) { (void)s; stop_flag = 1; }

static int64_t num_arg(const char *s, int64_t lo, int64_t hi) {
  char *e;
  errno = 0;
  long long v = strtoll(s, &e, 10);
  if (errno || *e || v < lo || v > hi) return -1;
  return v;
}

static int usage(const char *why) {
  say("ERR args 0 %s", why);
  fprintf(stderr, "usage: sekimori-exec-guard --mark PATH [--mark PATH ...] [--timeout-ms N] [--fallback allow|deny] [--orphan-grace-ms N] [--trusted-parent PID]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *marks[MAX_MARKS];
  int nmarks = 0;
  trusted_parent = getppid();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage("missing value");
    i++;
    if (!strcmp(a, "--mark")) {
      if (nmarks >= MAX_MARKS || v[0] != '/') return usage("bad --mark");
      marks[nmarks++] = v;
    } else if (!strcmp(a, "--timeout-ms")) {
      if ((timeout_ms = num_arg(v, 1, 60000)) < 0) return usage("bad --timeout-ms");
    } else if (!strcmp(a, "--orphan-grace-ms")) {
      if ((grace_ms = num_arg(v, 0, 3600000)) < 0) return usage("bad --orphan-grace-ms");
    } else if (!strcmp(a, "--trusted-parent")) {
      int64_t p = num_arg(v, 1, INT32_MAX);
      if (p < 0) return usage("bad --trusted-parent");
      trusted_parent = (pid_t)p;
    } else if (!strcmp(a, "--fallback")) {
      if (!strcmp(v, "allow")) fallback_allow = 1;
      else if (!strcmp(v, "deny")) fallback_allow = 0;
      else return usage("bad --fallback");
    } else return usage("unknown option");
  }
  if (!nmarks) return usage("no --mark");
  for (int i = 0; i < MAX_PENDING; i++) pend[i].fd = -1;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* Every exec on the marked mounts waits for this process to be scheduled: on a busy terminal a
   * default-priority helper added ~90 µs per cached exec (bench/software-preexec), at nice -10
   * ~30 µs. CFS weight only (not a real-time class): a bug here can slow, never starve, the rest. */
  (void)setpriority(PRIO_PROCESS, 0, -10); /* failure is not fatal: only slower answers */
  fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
  fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);

  fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fan < 0) { say("ERR init %d fanotify_init: %s", errno, strerror(errno)); return 3; }
  /* A mount that cannot be marked (gone, a filesystem without fanotify) is reported; the others
   * still are guarded. Only when none can be marked is there nothing to do. */
  int marked = 0;
  for (int i = 0; i < nmarks; i++) {
    if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, AT_FDCWD, marks[i]) == 0) marked++;
    else say("ERR mark %d %s", errno, strerror(errno));
  }
  if (!marked) return 3;
  say("READY %d %d", (int)getpid(), marked);

  char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
  while (!stop_flag) {
    struct pollfd p[2] = {{.fd = fan, .events = POLLIN}, {.fd = orphan ? -1 : STDIN_FILENO, .events = POLLIN}};
    int r = poll(p, 2, next_timeout());
    if (r < 0 && errno != EINTR) break;
    if (r > 0 && (p[0].revents & POLLIN)) {
      ssize_t n = read(fan, buf, sizeof buf);
      const struct fanotify_event_metadata *m = (const void *)buf;
      for (; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
        if (m->vers != FANOTIFY_METADATA_VERSION) { say("ERR init 0 fanotify metadata version %d", m->vers); return 4; }
        on_event(m);
      }
    }
    if (r > 0 && !orphan && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !read_stdin()) {
      orphan = 1;
      orphan_deadline = now_ms() + grace_ms;
      expire(1, "orphan");
    }
    expire(0, "timeout");
    if (orphan && now_ms() >= orphan_deadline) break;
  }
  expire(1, "stop");
  return 0;
}
