/*
 * sekimori-peercred — who is on the other end of the Unix socket on fd 0.
 *
 * The agent (Node, which has no SO_PEERCRED) runs this for each request on its unlock socket
 * with the accepted connection as stdin, and trusts only what the kernel says: SO_PEERCRED is
 * the uid/gid/pid recorded when the peer called connect(), which the peer cannot choose. The
 * account name comes from getpwuid (NSS: /etc/passwd, LDAP, SSSD) so that domain accounts work.
 *
 * Prints one line "UID PID GID NAME\n" (NAME is "-" when the uid has no account, or a name
 * outside [A-Za-z0-9._@-]{1,64}, which the agent would refuse anyway) and exits 0; exits 2 when
 * fd 0 is not a connected Unix stream socket, 1 on any other failure. It never reads or writes
 * the socket.
 */
#define _GNU_SOURCE
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static int plain_name(const char *s) {
  size_t n = strnlen(s, 65);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}

int main(void) {
  /* On anything but AF_UNIX, SO_PEERCRED answers without a peer process behind it. */
  struct sockaddr_un self;
  socklen_t sl = sizeof self;
  memset(&self, 0, sizeof self);
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockname(0, (struct sockaddr *)&self, &sl) != 0 || self.sun_family != AF_UNIX ||
      getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
    fputs("sekimori-peercred: fd 0 is not a Unix stream socket\n", stderr);
    return 2;
  }
  struct ucred cr;
  socklen_t cl = sizeof cr;
  if (getsockopt(0, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cl != sizeof cr || cr.pid <= 0) {
    fputs("sekimori-peercred: no peer credentials\n", stderr);
    return 2;
  }
  const struct passwd *pw = getpwuid(cr.uid);
  const char *name = (pw != NULL && pw->pw_name != NULL && plain_name(pw->pw_name)) ? pw->pw_name : "-";
  if (printf("%u %d %u %s\n", (unsigned)cr.uid, (int)cr.pid, (unsigned)cr.gid, name) < 0 || fflush(stdout) != 0) return 1;
  return 0;
}
