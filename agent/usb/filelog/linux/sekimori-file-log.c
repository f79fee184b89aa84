/*
 * sekimori-file-log: the kernel side of Sekimori's 持ち出しログ (issue 16).
 *
 * A root helper started by the agent. It holds one fanotify notification group (FAN_CLASS_NOTIF:
 * nothing is ever blocked or waited for) and marks, on the agent's request, the filesystem of each
 * usable removable medium for FAN_CLOSE_WRITE. Every file closed after writing there is reported
 * with the writer's pid and uid (read from /proc at once: the writer may exit right after close),
 * the file's identity and size, and its path as this helper's mount namespace names it. The file
 * is closed again at once: an open descriptor would keep the medium busy and refuse its unmount.
 * Hashing is the agent's job (it reads the file through /proc/<helper>/root<path>).
 *
 * It also watches its own mount table (poll on /proc/self/mountinfo) and says when it changed, so
 * the agent marks a medium right after it is mounted instead of at its next rescan.
 *
 * The kernel's event queue is the bound: when the agent reads too slowly the kernel drops events
 * and says so once (FAN_Q_OVERFLOW), which is reported as a count. When the filesystem is
 * unmounted its mark goes with it.
 *
 * Protocol (ASCII lines). Helper -> agent:
 *   READY <pid>
 *   MARKED <dev> <fs|mount>               the medium with st_dev <dev> is watched
 *   ERR <stage> <errno> <dev>              mark: could not watch that medium (wrong device, no fanotify)
 *   W <pid> <uid> <dev> <ino> <size> <hexpath>   a file was closed after writing (uid -1: writer gone)
 *   O <count>                              events lost (kernel queue overflow, unreadable events)
 *   MNT                                    the mount table changed (a medium may just have been mounted)
 * Agent -> helper:
 *   M <dev> <hexpath>   watch the filesystem mounted at <path>, only if its st_dev is <dev>
 *   U <dev> <hexpath>   stop watching it
 * When stdin closes (agent gone) the helper exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MARKS 64
#define LINE_MAX_IN (2 * PATH_MAX + 64)

struct mark {
  uint64_t dev;
  unsigned int how; /* FAN_MARK_FILESYSTEM or FAN_MARK_MOUNT; 0 = free */
};
static struct mark marks[MAX_MARKS];
static int fan = -1;
static volatile sig_atomic_t stop_flag;

static void on_term(int s) {
  (void)s;
  stop_flag = 1;
}

/* One whole line, blocking: the kernel queue in front of us is the bound, not this pipe. */
static void put(const char *b, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDOUT_FILENO, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(0); /* the agent is gone */
    }
    b += w;
    n -= (size_t)w;
  }
}

static char hexdig(unsigned v) { return (char)(v < 10 ? '0' + v : 'a' + v - 10); }

static int unhex(const char *h, char *out, size_t cap) {
  size_t n = strlen(h);
  if (n % 2 || n / 2 + 1 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int v = 0;
    for (int j = 0; j < 2; j++) {
      char c = h[2 * i + (size_t)j];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    if (v == 0) return -1;
    out[i] = (char)v;
  }
  out[n / 2] = 0;
  return 0;
}

static struct mark *find_mark(uint64_t dev) {
  for (int i = 0; i < MAX_MARKS; i++)
    if (marks[i].how && marks[i].dev == dev) return &marks[i];
  return NULL;
}

/* Marks through a descriptor checked against <dev>: a medium unmounted meanwhile leaves its
 * mount point on the parent filesystem, which must never be watched in its place. */
static void do_mark(int add, uint64_t dev, const char *path) {
  char line[128];
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* fanotify_mark refuses O_PATH descriptors */
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_dev != dev) {
    int e = fd < 0 ? errno : ESTALE;
    if (fd >= 0) close(fd);
    /* Unmounted already: its mark went with the filesystem; the slot is free again. */
    struct mark *gone = add ? NULL : find_mark(dev);
    if (gone) gone->how = 0;
    if (add) put(line, (size_t)snprintf(line, sizeof line, "ERR mark %d %" PRIu64 "\n", e, dev));
    return;
  }
  struct mark *m = find_mark(dev);
  if (!add) {
    if (m) {
      fanotify_mark(fan, FAN_MARK_REMOVE | m->how, FAN_CLOSE_WRITE, fd, NULL);
      m->how = 0;
    }
    close(fd);
    return;
  }
  /* Marked again even when the table has this device: a stick unmounted and mounted again keeps its
   * device number but is a new filesystem, whose mark the kernel dropped with the old one. Adding
   * the same mask to a filesystem that still has it changes nothing. */
  struct mark *slot = m;
  for (int i = 0; i < MAX_MARKS && !slot; i++)
    if (!marks[i].how) slot = &marks[i];
  if (!slot) {
    close(fd);
    put(line, (size_t)snprintf(line, sizeof line, "ERR mark %d %" PRIu64 "\n", ENOSPC, dev));
    return;
  }
  /* The whole filesystem (every mount of the medium, bind mounts too); the mount alone where the
   * kernel cannot mark a filesystem. */
  unsigned int how = FAN_MARK_FILESYSTEM;
  int r = fanotify_mark(fan, FAN_MARK_ADD | how, FAN_CLOSE_WRITE, fd, NULL);
  if (r != 0 && (errno == EINVAL || errno == EXDEV || errno == EOPNOTSUPP)) {
    how = FAN_MARK_MOUNT;
    r = fanotify_mark(fan, FAN_MARK_ADD | how, FAN_CLOSE_WRITE, fd, NULL);
  }
  int e = errno;
  close(fd);
  if (r != 0) {
    put(line, (size_t)snprintf(line, sizeof line, "ERR mark %d %" PRIu64 "\n", e, dev));
    return;
  }
  slot->dev = dev;
  slot->how = how;
  put(line, (size_t)snprintf(line, sizeof line, "MARKED %" PRIu64 " %s\n", dev, how == FAN_MARK_FILESYSTEM ? "fs" : "mount"));
}

static void command(char *l) {
  char path[PATH_MAX + 1];
  char *sp1 = strchr(l, ' ');
  if (!sp1 || (l[0] != 'M' && l[0] != 'U') || sp1 != l + 1) return;
  char *devs = sp1 + 1, *sp2 = strchr(devs, ' ');
  if (!sp2) return;
  *sp2 = 0;
  char *end;
  errno = 0;
  unsigned long long dev = strtoull(devs, &end, 10);
  if (errno || *end || end == devs) return;
  if (unhex(sp2 + 1, path, sizeof path) != 0 || path[0] != '/') return;
  do_mark(l[0] == 'M', (uint64_t)dev, path);
}

/* Real uid of the writer, -1 when it is gone already. */
static long uid_of(pid_t pid) {
  char p[64], b[2048];
  snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) return -1;
  b[n] = 0;
  char *u = strstr(b, "\nUid:");
  if (!u) return -1;
  return strtol(u + 5, NULL, 10);
}

static uint64_t lost;

static void on_event(const struct fanotify_event_metadata *m) {
  if (m->mask & FAN_Q_OVERFLOW) {
    lost++;
    return;
  }
  if (m->fd < 0) {
    lost++;
    return;
  }
  static char line[2 * PATH_MAX + 160];
  char proc[64], path[PATH_MAX + 1];
  struct stat st;
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", m->fd);
  ssize_t n = readlink(proc, path, sizeof path - 1);
  int ok = n > 0 && fstat(m->fd, &st) == 0;
  close(m->fd);
  if (!ok) {
    lost++;
    return;
  }
  path[n] = 0;
  if (!S_ISREG(st.st_mode)) return;
  long uid = uid_of(m->pid);
  int k = snprintf(line, sizeof line, "W %d %ld %" PRIu64 " %" PRIu64 " %" PRIu64 " ", (int)m->pid, uid, (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size);
  for (ssize_t i = 0; i < n; i++) {
    line[k++] = hexdig(((unsigned char)path[i]) >> 4);
    line[k++] = hexdig(((unsigned char)path[i]) & 15);
  }
  line[k++] = '\n';
  put(line, (size_t)k);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  char line[LINE_MAX_IN + 1];
  if (fan < 0) {
    put(line, (size_t)snprintf(line, sizeof line, "ERR init %d 0\n", errno));
    return 2;
  }
  put(line, (size_t)snprintf(line, sizeof line, "READY %d\n", (int)getpid()));
  size_t have = 0;
  static char in[LINE_MAX_IN + 1];
  /* poll() on mountinfo reports POLLPRI|POLLERR once per change of the mount namespace. */
  int mnt = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  char evbuf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
  while (!stop_flag) {
    struct pollfd p[3] = {{.fd = fan, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}, {.fd = mnt, .events = POLLPRI}};
    if (poll(p, mnt >= 0 ? 3 : 2, 1000) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[0].revents & POLLIN) {
      ssize_t n = read(fan, evbuf, sizeof evbuf);
      if (n > 0) {
        const struct fanotify_event_metadata *m = (const struct fanotify_event_metadata *)evbuf;
        for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) on_event(m);
      }
    }
    if (mnt >= 0 && (p[2].revents & (POLLPRI | POLLERR))) put("MNT\n", 4);
    if (lost) {
      put(line, (size_t)snprintf(line, sizeof line, "O %" PRIu64 "\n", lost));
      lost = 0;
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(STDIN_FILENO, in + have, LINE_MAX_IN - have);
      if (n <= 0) return 0; /* the agent is gone */
      have += (size_t)n;
      size_t start = 0;
      for (size_t i = 0; i < have; i++) {
        if (in[i] != '\n') continue;
        in[i] = 0;
        command(in + start);
        start = i + 1;
      }
      memmove(in, in + start, have - start);
      have -= start;
      if (have == LINE_MAX_IN) have = 0; /* an overlong line is dropped whole */
    }
  }
  return 0;
}
