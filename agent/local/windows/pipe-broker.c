/*
 * sekimori-pipebroker.exe <pipe name>: the Windows agent's user pipe (issue 15, 申請 from a terminal).
 *
 * Run by the agent service (LocalSystem) with its stdin/stdout as the only channel to the agent.
 * Owns \\.\pipe\sekimori-user (or the name given): any signed-in member of staff may connect and
 * send one request; the broker asks the KERNEL who is on the other end (ImpersonateNamedPipeClient
 * → OpenThreadToken → TokenUser → LookupAccountSid, GetNamedPipeClientProcessId/SessionId) and
 * hands the agent one frame it builds itself, so nothing the client sends can pose as identity:
 *
 *   to the agent (stdout): u32 LE length, then "Q <id> <pid> <session> <SID> <hex UTF-8 DOMAIN\user>\n" + client bytes
 *                          ("R <broker pid>\n" once the pipe exists: ready)
 *   from the agent (stdin): u32 LE length, then u32 LE id, then the answer bytes for that client
 *   client ↔ broker:        u32 LE length + bytes, once each way (at most MAX_BODY)
 *
 * Bounds: MAX_INSTANCES clients at once (one thread each), MAX_BODY bytes per request, CLIENT_MS to
 * send it, ANSWER_MS for the agent to answer. A client that lies, floods, stays silent or leaves
 * midway loses its own instance only. The pipe's DACL: SYSTEM and Administrators full control,
 * Authenticated Users read/write WITHOUT FILE_CREATE_PIPE_INSTANCE (nobody else can serve a
 * look-alike instance); remote clients are rejected; FILE_FLAG_FIRST_PIPE_INSTANCE makes start
 * fail (exit 3) when someone else created the name first. stdin closed (agent gone) → exit.
 */
#define WIN32_LEAN_AND_MEAN
#ifndef UNICODE
#define UNICODE
#endif
#ifndef _UNICODE
#define _UNICODE
#endif
#include <windows.h>
#include <sddl.h>
#include <stdio.h>
#include <string.h>

#define MAX_INSTANCES 8
#define MAX_BODY (16 * 1024)
#define MAX_AGENT_FRAME (64 * 1024)
#define CLIENT_MS 5000
#define ANSWER_MS 15000
#define LINGER_MS 2000

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif

/* Generic read + write for files/pipes minus FILE_CREATE_PIPE_INSTANCE (0x4): 0x12019f & ~0x4. */
static const wchar_t *SDDL = L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)";

typedef struct {
  HANDLE answered;       /* auto-reset: the agent's answer for `waiting` is in `answer` */
  volatile LONG waiting; /* id this slot waits for, 0 = none */
  DWORD answerLen;
  unsigned char answer[MAX_BODY];
  HANDLE pipe;
  int index;
} Slot;

static Slot slots[MAX_INSTANCES];
static CRITICAL_SECTION outLock, slotLock;
static HANDLE out, in;
static const wchar_t *pipeName;
static SECURITY_ATTRIBUTES sa;
static volatile LONG seq;

static void put32(unsigned char *p, DWORD v) {
  p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static DWORD get32(const unsigned char *p) { return (DWORD)p[0] | ((DWORD)p[1] << 8) | ((DWORD)p[2] << 16) | ((DWORD)p[3] << 24); }

/* Writes one frame to the agent; a broken stdout means the agent is gone: stop. */
static void toAgent(const char *head, DWORD headLen, const unsigned char *body, DWORD bodyLen) {
  unsigned char len[4];
  DWORD n;
  put32(len, headLen + bodyLen);
  EnterCriticalSection(&outLock);
  BOOL ok = WriteFile(out, len, 4, &n, NULL) && WriteFile(out, head, headLen, &n, NULL) && (bodyLen == 0 || WriteFile(out, body, bodyLen, &n, NULL));
  LeaveCriticalSection(&outLock);
  if (!ok) ExitProcess(0);
}

/* Overlapped I/O on the client's instance, bounded by `deadline` (GetTickCount64). */
static BOOL pipeIo(HANDLE h, BOOL write, void *buf, DWORD len, ULONGLONG deadline) {
  DWORD done = 0;
  while (done < len) {
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ov.hEvent) return FALSE;
    DWORD n = 0;
    BOOL ok = write ? WriteFile(h, (char *)buf + done, len - done, NULL, &ov) : ReadFile(h, (char *)buf + done, len - done, NULL, &ov);
    if (!ok && GetLastError() != ERROR_IO_PENDING) { CloseHandle(ov.hEvent); return FALSE; }
    ULONGLONG now = GetTickCount64();
    DWORD wait = now >= deadline ? 0 : (DWORD)(deadline - now);
    if (WaitForSingleObject(ov.hEvent, wait) != WAIT_OBJECT_0) {
      CancelIo(h);
      GetOverlappedResult(h, &ov, &n, TRUE);
      CloseHandle(ov.hEvent);
      return FALSE;
    }
    ok = GetOverlappedResult(h, &ov, &n, FALSE);
    CloseHandle(ov.hEvent);
    if (!ok || n == 0) return FALSE;
    done += n;
  }
  return TRUE;
}

/* The client's account from its token (impersonation only for the look-up). FALSE: unknown. */
static BOOL clientIdentity(HANDLE h, char *sidOut, size_t sidCap, char *hexOut, size_t hexCap) {
  if (!ImpersonateNamedPipeClient(h)) return FALSE;
  HANDLE tok = NULL;
  BOOL opened = OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &tok);
  /* Never go on as the client: a failed revert ends the broker (the agent restarts it). */
  if (!RevertToSelf()) ExitProcess(5);
  if (!opened) return FALSE;
  BYTE info[512];
  DWORD got = 0;
  BOOL ok = GetTokenInformation(tok, TokenUser, info, sizeof info, &got);
  CloseHandle(tok);
  if (!ok) return FALSE;
  PSID sid = ((TOKEN_USER *)info)->User.Sid;
  wchar_t *sidText = NULL;
  if (!ConvertSidToStringSidW(sid, &sidText)) return FALSE;
  int sl = WideCharToMultiByte(CP_UTF8, 0, sidText, -1, sidOut, (int)sidCap, NULL, NULL);
  LocalFree(sidText);
  if (sl <= 1) return FALSE;
  wchar_t name[257], domain[257], account[520];
  DWORD nl = 257, dl = 257;
  SID_NAME_USE use;
  if (!LookupAccountSidW(NULL, sid, name, &nl, domain, &dl, &use)) return FALSE;
  if (dl > 0) _snwprintf(account, 520, L"%ls\\%ls", domain, name);
  else _snwprintf(account, 520, L"%ls", name);
  account[519] = 0;
  char utf8[1600];
  int ul = WideCharToMultiByte(CP_UTF8, 0, account, -1, utf8, sizeof utf8, NULL, NULL);
  if (ul <= 1 || (size_t)(ul - 1) * 2 + 1 > hexCap) return FALSE;
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < ul - 1; i++) {
    hexOut[2 * i] = hx[(unsigned char)utf8[i] >> 4];
    hexOut[2 * i + 1] = hx[(unsigned char)utf8[i] & 15];
  }
  hexOut[2 * (ul - 1)] = 0;
  return TRUE;
}

static void serve(Slot *s) {
  HANDLE h = s->pipe;
  ULONGLONG deadline = GetTickCount64() + CLIENT_MS;
  unsigned char len[4];
  unsigned char body[MAX_BODY];
  if (!pipeIo(h, FALSE, len, 4, deadline)) return;
  DWORD n = get32(len);
  if (n == 0 || n > MAX_BODY) return; /* a liar or a flood: its instance only */
  if (!pipeIo(h, FALSE, body, n, deadline)) return;
  char sid[256], hex[1100];
  if (!clientIdentity(h, sid, sizeof sid, hex, sizeof hex)) { sid[0] = '-'; sid[1] = 0; hex[0] = '-'; hex[1] = 0; }
  ULONG pid = 0, session = 0xffffffffUL;
  if (!GetNamedPipeClientProcessId(h, &pid)) pid = 0;
  if (!GetNamedPipeClientSessionId(h, &session)) session = 0xffffffffUL;
  DWORD id = ((DWORD)(InterlockedIncrement(&seq) & 0x0fffffff) << 4) | (DWORD)s->index;
  if (id == 0) id = (DWORD)s->index | 0x10;
  char head[1500];
  int hl = snprintf(head, sizeof head, "Q %lu %lu %lu %s %s\n", (unsigned long)id, (unsigned long)pid, (unsigned long)session, sid, hex);
  if (hl <= 0 || hl >= (int)sizeof head) return;
  ResetEvent(s->answered);
  InterlockedExchange(&s->waiting, (LONG)id);
  toAgent(head, (DWORD)hl, body, n);
  DWORD w = WaitForSingleObject(s->answered, ANSWER_MS);
  EnterCriticalSection(&slotLock);
  InterlockedExchange(&s->waiting, 0);
  LeaveCriticalSection(&slotLock);
  if (w != WAIT_OBJECT_0) return;
  put32(len, s->answerLen);
  deadline = GetTickCount64() + CLIENT_MS;
  if (!pipeIo(h, TRUE, len, 4, deadline) || !pipeIo(h, TRUE, s->answer, s->answerLen, deadline)) return;
  /* Disconnecting discards what the client has not read yet: wait (bounded) for it to hang up. */
  unsigned char junk[64];
  deadline = GetTickCount64() + LINGER_MS;
  for (int i = 0; i < 16 && pipeIo(h, FALSE, junk, sizeof junk, deadline); i++) {}
}

static HANDLE newInstance(BOOL first) {
  return CreateNamedPipeW(pipeName, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                          PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, MAX_INSTANCES, MAX_BODY + 8,
                          MAX_BODY + 8, 0, &sa);
}

static DWORD WINAPI worker(LPVOID arg) {
  Slot *s = (Slot *)arg;
  for (;;) {
    if (s->pipe == INVALID_HANDLE_VALUE) {
      s->pipe = newInstance(FALSE);
      if (s->pipe == INVALID_HANDLE_VALUE) { Sleep(1000); continue; }
    }
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    BOOL ok = ConnectNamedPipe(s->pipe, &ov);
    DWORD e = ok ? ERROR_PIPE_CONNECTED : GetLastError();
    if (e == ERROR_IO_PENDING) {
      DWORD n;
      WaitForSingleObject(ov.hEvent, INFINITE); /* waiting for a client costs nothing */
      e = GetOverlappedResult(s->pipe, &ov, &n, FALSE) ? ERROR_PIPE_CONNECTED : GetLastError();
    }
    CloseHandle(ov.hEvent);
    if (e == ERROR_PIPE_CONNECTED) serve(s);
    DisconnectNamedPipe(s->pipe);
  }
  return 0;
}

static BOOL readAll(HANDLE h, unsigned char *buf, DWORD len) {
  DWORD done = 0, n;
  while (done < len) {
    if (!ReadFile(h, buf + done, len - done, &n, NULL) || n == 0) return FALSE;
    done += n;
  }
  return TRUE;
}

int wmain(int argc, wchar_t **argv) {
  if (argc != 2 || wcsncmp(argv[1], L"\\\\.\\pipe\\", 9) != 0 || wcslen(argv[1]) > 200) {
    fputs("usage: sekimori-pipebroker \\\\.\\pipe\\NAME\n", stderr);
    return 2;
  }
  pipeName = argv[1];
  out = GetStdHandle(STD_OUTPUT_HANDLE);
  in = GetStdHandle(STD_INPUT_HANDLE);
  InitializeCriticalSection(&outLock);
  InitializeCriticalSection(&slotLock);
  PSECURITY_DESCRIPTOR sd = NULL;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(SDDL, SDDL_REVISION_1, &sd, NULL)) {
    fprintf(stderr, "sekimori-pipebroker: security descriptor: %lu\n", GetLastError());
    return 4;
  }
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = sd;
  sa.bInheritHandle = FALSE;
  HANDLE first = newInstance(TRUE);
  if (first == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "sekimori-pipebroker: cannot create the pipe (someone else's?): %lu\n", GetLastError());
    return 3;
  }
  for (int i = 0; i < MAX_INSTANCES; i++) {
    slots[i].index = i;
    slots[i].answered = CreateEventW(NULL, FALSE, FALSE, NULL);
    slots[i].pipe = i == 0 ? first : INVALID_HANDLE_VALUE;
    if (!slots[i].answered || !CreateThread(NULL, 256 * 1024, worker, &slots[i], 0, NULL)) return 4;
  }
  char ready[64];
  int rl = snprintf(ready, sizeof ready, "R %lu\n", (unsigned long)GetCurrentProcessId());
  toAgent(ready, (DWORD)rl, NULL, 0);
  /* The agent's answers: each to the slot still waiting for that id, else dropped (its client left). */
  static unsigned char frame[MAX_AGENT_FRAME];
  for (;;) {
    unsigned char len[4];
    if (!readAll(in, len, 4)) return 0;
    DWORD n = get32(len);
    if (n < 4 || n > MAX_AGENT_FRAME || !readAll(in, frame, n)) return 0;
    DWORD id = get32(frame);
    DWORD idx = id & 15;
    if (idx >= MAX_INSTANCES || n - 4 > MAX_BODY) continue;
    Slot *s = &slots[idx];
    EnterCriticalSection(&slotLock);
    if ((DWORD)s->waiting == id && id != 0) {
      memcpy(s->answer, frame + 4, n - 4);
      s->answerLen = n - 4;
      SetEvent(s->answered);
    }
    LeaveCriticalSection(&slotLock);
  }
}
