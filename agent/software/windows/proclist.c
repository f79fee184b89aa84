/*
 * sekimori-proclist.exe: the Windows process list the software capability judges, without
 * PowerShell or WMI (systeminformation's processes() runs PowerShell's Get-CimInstance on
 * Windows; wmic is removed from current Windows 11; tasklist has no executable paths).
 *
 *   sekimori-proclist list
 *     one line per process:  P <pid> <ppid> <creation> <image> <user>
 *       creation  process creation time (FILETIME, decimal; 0 when unreadable): pid + creation
 *                 identifies one process, pid alone is reused
 *       image     QueryFullProcessImageNameW's Win32 path, UTF-16LE as hex ('-' when unreadable)
 *       user      DOMAIN\name of the process token's owner, UTF-16LE hex ('-' when unreadable)
 *     then "END <count>": a listing without it is incomplete and not used.
 *   sekimori-proclist watch <ms>
 *     the agent's process watch: a snapshot every <ms> (50..60000), printing only the changes —
 *     "P …" (as above) for a process not seen before (pid + creation time), "G <pid> <creation>"
 *     for one gone, then "T <count>" (processes now) after each snapshot. One long-lived helper
 *     instead of a process start per tick; it exits when its standard input closes (the agent is gone).
 *   sekimori-proclist kill <pid> <creation> <image-hex>
 *     opens the process once, checks on that same handle that it is still the one judged (same
 *     creation time and image path), then TerminateProcess: no window for pid reuse.
 *     exit 0 killed, 3 gone, 4 changed (another process now), 5 failed (access, protected).
 *
 * Hex keeps the output ASCII whatever the names hold (NT names may carry any UTF-16 unit).
 * Build: x86_64-w64-mingw32-gcc -O2 -s -o sekimori-proclist.exe proclist.c -ladvapi32
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <tlhelp32.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static void put_hex(const wchar_t *s, DWORD n) {
  static const char digits[] = "0123456789abcdef";
  char buf[4 * 64 + 1];
  DWORD i = 0;
  size_t k = 0;
  if (s == NULL || n == 0) {
    fputs("-", stdout);
    return;
  }
  for (i = 0; i < n; i++) {
    unsigned v = (unsigned)s[i];
    buf[k++] = digits[(v >> 4) & 15];
    buf[k++] = digits[v & 15];
    buf[k++] = digits[(v >> 12) & 15];
    buf[k++] = digits[(v >> 8) & 15];
    if (k == sizeof(buf) - 1) {
      buf[k] = 0;
      fputs(buf, stdout);
      k = 0;
    }
  }
  buf[k] = 0;
  fputs(buf, stdout);
}

static unsigned long long creation_of(HANDLE h) {
  FILETIME c, e, k, u;
  if (!GetProcessTimes(h, &c, &e, &k, &u)) return 0;
  return ((unsigned long long)c.dwHighDateTime << 32) | c.dwLowDateTime;
}

static DWORD image_of(HANDLE h, wchar_t *buf, DWORD cap) {
  DWORD n = cap;
  if (!QueryFullProcessImageNameW(h, 0, buf, &n)) return 0;
  return n;
}

static DWORD owner_of(HANDLE h, wchar_t *out, DWORD cap) {
  HANDLE tok = NULL;
  BYTE info[512];
  DWORD len = 0;
  wchar_t name[256], dom[256];
  DWORD nn = 256, dn = 256;
  SID_NAME_USE use;
  if (!OpenProcessToken(h, TOKEN_QUERY, &tok)) return 0;
  if (!GetTokenInformation(tok, TokenUser, info, sizeof(info), &len)) {
    CloseHandle(tok);
    return 0;
  }
  CloseHandle(tok);
  if (!LookupAccountSidW(NULL, ((TOKEN_USER *)info)->User.Sid, name, &nn, dom, &dn, &use)) return 0;
  if (dn + 1 + nn + 1 > cap) return 0;
  wmemcpy(out, dom, dn);
  out[dn] = L'\\';
  wmemcpy(out + dn + 1, name, nn);
  return dn + 1 + nn;
}

static int list(void) {
  static wchar_t img[32768], user[600];
  PROCESSENTRY32W pe;
  unsigned count = 0;
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return 2;
  pe.dwSize = sizeof(pe);
  if (!Process32FirstW(snap, &pe)) {
    CloseHandle(snap);
    return 2;
  }
  do {
    DWORD n = 0, un = 0;
    unsigned long long created = 0;
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pe.th32ProcessID);
    if (h != NULL) {
      n = image_of(h, img, 32768);
      created = creation_of(h);
      un = owner_of(h, user, 600);
      CloseHandle(h);
    }
    printf("P %lu %lu %llu ", (unsigned long)pe.th32ProcessID, (unsigned long)pe.th32ParentProcessID, created);
    put_hex(n ? img : NULL, n);
    fputs(" ", stdout);
    put_hex(un ? user : NULL, un);
    fputs("\n", stdout);
    count++;
  } while (Process32NextW(snap, &pe) && count < 1000000);
  CloseHandle(snap);
  printf("END %u\n", count);
  return fflush(stdout) == 0 ? 0 : 2;
}

typedef struct {
  DWORD pid, ppid;
  unsigned long long created;
} proc_t;

static int by_pid(const void *a, const void *b) {
  DWORD x = ((const proc_t *)a)->pid, y = ((const proc_t *)b)->pid;
  return x < y ? -1 : x > y;
}

static void print_new(const proc_t *p) {
  static wchar_t img[32768], user[600];
  DWORD n = 0, un = 0;
  HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, p->pid);
  if (h != NULL) {
    n = image_of(h, img, 32768);
    un = owner_of(h, user, 600);
    CloseHandle(h);
  }
  printf("P %lu %lu %llu ", (unsigned long)p->pid, (unsigned long)p->ppid, p->created);
  put_hex(n ? img : NULL, n);
  fputs(" ", stdout);
  put_hex(un ? user : NULL, un);
  fputs("\n", stdout);
}

/* Ends the helper when the agent closes our standard input (or dies). */
static DWORD WINAPI stdin_eof(LPVOID unused) {
  char b[64];
  DWORD n = 0;
  (void)unused;
  while (ReadFile(GetStdHandle(STD_INPUT_HANDLE), b, sizeof(b), &n, NULL) && n > 0) {
  }
  ExitProcess(0);
  return 0;
}

#define MAX_PROCS 65536

static int watch(const char *ms_s) {
  static proc_t known[MAX_PROCS], now[MAX_PROCS];
  size_t nk = 0;
  char *end = NULL;
  unsigned long ms = strtoul(ms_s, &end, 10);
  if (*end != 0 || ms < 50 || ms > 60000) return 64;
  if (CreateThread(NULL, 0, stdin_eof, NULL, 0, NULL) == NULL) return 2;
  for (;;) {
    PROCESSENTRY32W pe;
    size_t nn = 0, i = 0, j = 0;
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return 2;
    pe.dwSize = sizeof(pe);
    if (Process32FirstW(snap, &pe)) {
      do {
        HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pe.th32ProcessID);
        now[nn].pid = pe.th32ProcessID;
        now[nn].ppid = pe.th32ParentProcessID;
        now[nn].created = 0;
        if (h != NULL) {
          now[nn].created = creation_of(h);
          CloseHandle(h);
        }
        nn++;
      } while (nn < MAX_PROCS && Process32NextW(snap, &pe));
    }
    CloseHandle(snap);
    qsort(now, nn, sizeof(proc_t), by_pid);
    /* Merge by pid: same pid with another creation time is a new process (pid reused). */
    while (i < nn || j < nk) {
      if (j >= nk || (i < nn && now[i].pid < known[j].pid)) {
        print_new(&now[i++]);
      } else if (i >= nn || known[j].pid < now[i].pid) {
        printf("G %lu %llu\n", (unsigned long)known[j].pid, known[j].created);
        j++;
      } else {
        if (now[i].created != known[j].created) {
          printf("G %lu %llu\n", (unsigned long)known[j].pid, known[j].created);
          print_new(&now[i]);
        }
        i++;
        j++;
      }
    }
    memcpy(known, now, nn * sizeof(proc_t));
    nk = nn;
    printf("T %lu\n", (unsigned long)nk);
    if (fflush(stdout) != 0) return 2; /* the agent stopped reading */
    Sleep(ms);
  }
}

static int from_hex(const char *hex, wchar_t *out, DWORD cap, DWORD *n) {
  size_t len = strlen(hex), i;
  if (len % 4 != 0 || len / 4 >= cap) return 0;
  for (i = 0; i < len; i += 4) {
    char b[5] = {hex[i + 2], hex[i + 3], hex[i], hex[i + 1], 0};
    char *end = NULL;
    unsigned long v = strtoul(b, &end, 16);
    if (end != b + 4) return 0;
    out[i / 4] = (wchar_t)v;
  }
  *n = (DWORD)(len / 4);
  return 1;
}

static int kill_same(const char *pid_s, const char *created_s, const char *hex) {
  static wchar_t want[32768], now[32768];
  DWORD want_n = 0, now_n = 0;
  char *end = NULL;
  unsigned long pid = strtoul(pid_s, &end, 10);
  unsigned long long created;
  HANDLE h;
  if (*end != 0 || pid == 0) return 5;
  created = strtoull(created_s, &end, 10);
  if (*end != 0 || !from_hex(hex, want, 32768, &want_n)) return 5;
  h = OpenProcess(PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE, (DWORD)pid);
  if (h == NULL) return GetLastError() == ERROR_INVALID_PARAMETER ? 3 : 5;
  {
    DWORD code = 0;
    if (GetExitCodeProcess(h, &code) && code != STILL_ACTIVE) {
      CloseHandle(h);
      return 3;
    }
  }
  now_n = image_of(h, now, 32768);
  if (creation_of(h) != created || now_n != want_n || wmemcmp(now, want, now_n) != 0) {
    CloseHandle(h);
    return 4;
  }
  if (!TerminateProcess(h, 1)) {
    CloseHandle(h);
    return 5;
  }
  WaitForSingleObject(h, 5000);
  CloseHandle(h);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "list") == 0) return list();
  if (argc == 3 && strcmp(argv[1], "watch") == 0) return watch(argv[2]);
  if (argc == 5 && strcmp(argv[1], "kill") == 0) return kill_same(argv[2], argv[3], argv[4]);
  fputs("usage: sekimori-proclist list | watch <ms> | kill <pid> <creation> <image-hex>\n", stderr);
  return 64;
}
