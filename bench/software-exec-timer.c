/*
 * bench/software-preexec's exec timer: for each PATH, N times: fork, execv(PATH, [PATH, ARGS…]),
 * waitpid. Prints one line per run: "<nanoseconds> <wait status>". Timing in C so the figure is the
 * exec itself (fork + exec + exit), not a Node spawn's own millisecond of overhead.
 * usage: software-exec-timer N PATH [PATH ...] [-- ARG ...]
 *        software-exec-timer -e N PATH: execv(PATH) N times where PATH is executable but in no
 *        binary format, so every call opens it for exec (the fanotify permission event) and returns
 *        ENOEXEC (or EPERM when refused) without replacing the process. Prints "<ns> <errno>".
 *        The loop runs in a forked child: the helper treats the agent's own children differently.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int exec_loop(long n, char *path) {
  pid_t pid = fork();
  if (pid < 0) return 3;
  if (pid > 0) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 4;
  }
  char *cargv[] = {path, NULL};
  for (long r = 0; r < n; r++) {
    long long t0 = now_ns();
    execv(path, cargv);
    int e = errno;
    printf("%lld %d\n", now_ns() - t0, e);
  }
  fflush(stdout);
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "-e")) {
    long n = strtol(argv[2], NULL, 10);
    return n < 1 || n > 10000000 ? 2 : exec_loop(n, argv[3]);
  }
  if (argc < 3) return 2;
  long n = strtol(argv[1], NULL, 10);
  if (n < 1 || n > 1000000) return 2;
  int first_arg = argc;
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--")) { first_arg = i + 1; break; }
  int npaths = (first_arg == argc ? argc : first_arg - 1) - 2;
  char *cargv[64];
  for (int p = 0; p < npaths; p++) {
    int k = 0;
    cargv[k++] = argv[2 + p];
    for (int i = first_arg; i < argc && k < 63; i++) cargv[k++] = argv[i];
    cargv[k] = NULL;
    for (long r = 0; r < n; r++) {
      long long t0 = now_ns();
      pid_t pid = fork();
      if (pid < 0) return 3;
      if (pid == 0) {
        execv(cargv[0], cargv);
        _exit(126);
      }
      int st = 0;
      waitpid(pid, &st, 0);
      printf("%lld %d\n", now_ns() - t0, st);
    }
  }
  return 0;
}
