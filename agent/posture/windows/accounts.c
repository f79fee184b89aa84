/*
 * sekimori-accounts.exe: the local accounts of this Windows terminal, for the posture's
 * mfa_enrolment control (agent/posture/windows/accounts.ts reads the output; the console judges
 * which of them hold an MFA enrolment, as it does for Linux).
 *
 *   sekimori-accounts
 *     NetUserEnum(level 20, FILTER_NORMAL_ACCOUNT): one line per account
 *       A <flags> <name>
 *         flags  usri20_flags in hex (UF_ACCOUNTDISABLE 0x2, UF_LOCKOUT 0x10, …)
 *         name   UTF-16LE as hex (names may hold any UTF-16 unit; the output stays ASCII)
 *     Level 20 (name + flags) rather than 1: wine implements levels 0 and 20 only (level 1 is
 *     ERROR_INVALID_LEVEL there), and Windows has both.
 *     then "END <count>": a listing without it is incomplete and not used.
 *     exit 0; 2 with "ERR <status>" when NetUserEnum fails; at most 10000 accounts.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -s -o sekimori-accounts.exe accounts.c -lnetapi32
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <lm.h>
#include <stdio.h>
#include <wchar.h>

#define MAX_ACCOUNTS 10000

static void put_hex(const wchar_t *s) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  if (s == NULL || s[0] == 0) {
    fputs("-", stdout);
    return;
  }
  for (i = 0; s[i] != 0 && i < 512; i++) {
    unsigned v = (unsigned)s[i];
    putchar(digits[(v >> 4) & 15]);
    putchar(digits[v & 15]);
    putchar(digits[(v >> 12) & 15]);
    putchar(digits[(v >> 8) & 15]);
  }
}

int main(void) {
  DWORD resume = 0, count = 0;
  NET_API_STATUS st;
  do {
    LPUSER_INFO_20 buf = NULL;
    DWORD read = 0, total = 0, i;
    st = NetUserEnum(NULL, 20, FILTER_NORMAL_ACCOUNT, (LPBYTE *)&buf, MAX_PREFERRED_LENGTH, &read, &total, &resume);
    if (st != NERR_Success && st != ERROR_MORE_DATA) {
      if (buf) NetApiBufferFree(buf);
      printf("ERR %lu\n", (unsigned long)st);
      fflush(stdout);
      return 2;
    }
    for (i = 0; buf && i < read && count < MAX_ACCOUNTS; i++, count++) {
      printf("A %lx ", (unsigned long)buf[i].usri20_flags);
      put_hex(buf[i].usri20_name);
      putchar('\n');
    }
    if (buf) NetApiBufferFree(buf);
  } while (st == ERROR_MORE_DATA && count < MAX_ACCOUNTS);
  printf("END %lu\n", (unsigned long)count);
  fflush(stdout);
  return 0;
}
