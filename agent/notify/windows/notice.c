/*
 * sekimori-notice.exe: shows one notice to the member of staff at the Windows terminal. The agent
 * runs as a service in session 0, which has no desktop; WTSSendMessageW is the documented way for
 * a service to put a message box on the desktop of another session (here: the active console
 * session, WTSGetActiveConsoleSessionId).
 *
 *   sekimori-notice <timeout-seconds> <title-hex> <body-hex>
 *     title/body: UTF-16LE as hex (ASCII on the command line whatever the text holds; the agent
 *     has already made the text inert and bounded: protocol/notice.ts noticeText).
 *     timeout 1..3600: the box closes itself after that long. bWait is FALSE: the call returns at
 *     once and never waits for the user.
 *   exit 0 sent, 2 nobody at the console (no active session), 3 send failed, 64 bad arguments.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -s -o sekimori-notice.exe notice.c -lwtsapi32
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <wtsapi32.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHARS 4096

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* UTF-16LE hex → NUL-terminated wide string; NULL when malformed or too long. */
static wchar_t *from_hex(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n % 4 != 0 || n / 4 > MAX_CHARS) return NULL;
  wchar_t *w = (wchar_t *)calloc(n / 4 + 1, sizeof(wchar_t));
  if (w == NULL) return NULL;
  for (size_t i = 0; i < n / 4; i++) {
    int d[4];
    for (int k = 0; k < 4; k++) {
      d[k] = hexval(h[i * 4 + k]);
      if (d[k] < 0) {
        free(w);
        return NULL;
      }
    }
    /* little-endian: low byte first */
    w[i] = (wchar_t)((d[0] << 4 | d[1]) | (d[2] << 4 | d[3]) << 8);
  }
  return w;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fputs("usage: sekimori-notice <timeout-seconds> <title-hex> <body-hex>\n", stderr);
    return 64;
  }
  char *end = NULL;
  long timeout = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || timeout < 1 || timeout > 3600) {
    fputs("sekimori-notice: timeout must be 1..3600\n", stderr);
    return 64;
  }
  wchar_t *title = from_hex(argv[2]);
  wchar_t *body = from_hex(argv[3]);
  if (title == NULL || body == NULL) {
    fputs("sekimori-notice: title and body must be UTF-16LE hex (at most 4096 characters)\n", stderr);
    return 64;
  }
  DWORD session = WTSGetActiveConsoleSessionId();
  if (session == 0xFFFFFFFF) {
    fputs("sekimori-notice: no active console session\n", stderr);
    return 2;
  }
  DWORD response = 0;
  BOOL ok = WTSSendMessageW(WTS_CURRENT_SERVER_HANDLE, session, title, (DWORD)(wcslen(title) * sizeof(wchar_t)), body,
                            (DWORD)(wcslen(body) * sizeof(wchar_t)), MB_OK | MB_ICONWARNING | MB_SETFOREGROUND,
                            (DWORD)timeout, &response, FALSE);
  if (!ok) {
    fprintf(stderr, "sekimori-notice: WTSSendMessageW failed (%lu)\n", (unsigned long)GetLastError());
    return 3;
  }
  printf("sent session=%lu\n", (unsigned long)session);
  return 0;
}
