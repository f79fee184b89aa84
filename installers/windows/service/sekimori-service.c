/*
 * sekimori-service.exe — the Windows service "SekimoriAgent" around sekimori-agent.exe.
 * Node cannot talk to the service control manager, so this small wrapper does:
 *   - locks C:\ProgramData\Sekimori (state, outbox, the agent's extracted addons), the enrolment
 *     key HKLM\SOFTWARE\Sekimori\Enrollment and the privacyIDEA Credential Provider's key (it
 *     holds the terminal's credential) to SYSTEM and Administrators;
 *   - enrols once from that key (written by the MSI: Console, Token, CaFingerprint) and deletes the
 *     one-time token afterwards;
 *   - runs `sekimori-agent.exe run --state C:\ProgramData\Sekimori\agent`, restarts it when it ends
 *     on its own (back-off 1 s … 60 s), stops it on service stop (Ctrl-C = SIGINT, so the agent
 *     writes agent.stopped; TerminateProcess after 15 s);
 *   - writes start / stop / unexpected end (possible tamper) to the Windows Event Log, source
 *     "Sekimori" (message table: sekimori-service.mc), and sets the service's own recovery
 *     actions (restart on failure) in case the wrapper itself dies.
 * Built with x86_64-w64-mingw32-gcc by installers/windows/build.sh.
 */
#ifndef UNICODE
#define UNICODE
#endif
#ifndef _UNICODE
#define _UNICODE
#endif
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <wchar.h>

#define SERVICE_NAME L"SekimoriAgent"
#define EVENT_SOURCE L"Sekimori"
#define ENROLL_KEY L"SOFTWARE\\Sekimori\\Enrollment"
#define CP_KEY L"SOFTWARE\\Netknights GmbH\\PrivacyIDEA-CP"
/* Owner SYSTEM; full control for SYSTEM and Administrators only; no inheritance from above. */
#define PRIVATE_SDDL L"O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
#define PRIVATE_KEY_SDDL L"O:SYD:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)"

/* Event IDs: each is "%1" in the message table; the text is built here (Japanese / English). */
enum { EV_STARTED = 1, EV_STOPPED = 2, EV_CRASHED = 3, EV_ENROLLED = 4, EV_ENROLL_FAILED = 5, EV_SETUP_FAILED = 6 };

static SERVICE_STATUS_HANDLE g_status_handle;
static SERVICE_STATUS g_status;
static HANDLE g_stop_event;

static void log_event(WORD type, DWORD id, const wchar_t *fmt, ...) {
  wchar_t text[1024];
  va_list ap;
  va_start(ap, fmt);
  _vsnwprintf(text, 1023, fmt, ap);
  va_end(ap);
  text[1023] = 0;
  HANDLE src = RegisterEventSourceW(NULL, EVENT_SOURCE);
  if (src) {
    const wchar_t *strings[1] = {text};
    ReportEventW(src, type, 0, id, NULL, 1, 0, strings, NULL);
    DeregisterEventSource(src);
  }
}

static void set_state(DWORD state, DWORD wait_hint) {
  g_status.dwCurrentState = state;
  g_status.dwWaitHint = wait_hint;
  g_status.dwControlsAccepted = state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
  if (state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING) g_status.dwCheckPoint++;
  else g_status.dwCheckPoint = 0;
  SetServiceStatus(g_status_handle, &g_status);
}

static DWORD WINAPI control_handler(DWORD control, DWORD type, void *data, void *ctx) {
  (void)type; (void)data; (void)ctx;
  switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
      set_state(SERVICE_STOP_PENDING, 20000);
      SetEvent(g_stop_event);
      return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
      return NO_ERROR;
    default:
      return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

/* Restart the service itself on failure (the wrapper crashing or being killed): 5 s, 30 s, 60 s. */
static void set_recovery(void) {
  SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  if (!scm) return;
  SC_HANDLE svc = OpenServiceW(scm, SERVICE_NAME, SERVICE_CHANGE_CONFIG | SERVICE_START);
  if (svc) {
    SC_ACTION actions[3] = {{SC_ACTION_RESTART, 5000}, {SC_ACTION_RESTART, 30000}, {SC_ACTION_RESTART, 60000}};
    SERVICE_FAILURE_ACTIONSW fa = {86400, NULL, NULL, 3, actions};
    SERVICE_FAILURE_ACTIONS_FLAG flag = {TRUE}; /* also when it stops with an error code */
    if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa) || !ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &flag))
      log_event(EVENTLOG_WARNING_TYPE, EV_SETUP_FAILED, L"回復オプションを設定できません / cannot set recovery actions (error %lu)", GetLastError());
    CloseServiceHandle(svc);
  }
  CloseServiceHandle(scm);
}

/* Creates `dir` (or re-applies the DACL of an existing one): SYSTEM and Administrators only. */
static BOOL private_dir(const wchar_t *dir) {
  PSECURITY_DESCRIPTOR sd = NULL;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(PRIVATE_SDDL, SDDL_REVISION_1, &sd, NULL)) return FALSE;
  SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
  BOOL ok = CreateDirectoryW(dir, &sa) || GetLastError() == ERROR_ALREADY_EXISTS;
  if (ok) {
    BOOL present = FALSE, defaulted = FALSE;
    PACL dacl = NULL;
    GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted);
    ok = SetNamedSecurityInfoW((wchar_t *)dir, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL, NULL, dacl, NULL) == ERROR_SUCCESS;
  }
  LocalFree(sd);
  return ok;
}

/* Restricts an existing HKLM key to SYSTEM and Administrators (FALSE only when it exists and fails). */
static BOOL private_key(const wchar_t *path) {
  HKEY key;
  LONG rc = RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, WRITE_DAC | KEY_WOW64_64KEY, &key);
  if (rc == ERROR_FILE_NOT_FOUND) return TRUE;
  if (rc != ERROR_SUCCESS) return FALSE;
  PSECURITY_DESCRIPTOR sd = NULL;
  BOOL ok = ConvertStringSecurityDescriptorToSecurityDescriptorW(PRIVATE_KEY_SDDL, SDDL_REVISION_1, &sd, NULL) &&
            RegSetKeySecurity(key, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, sd) == ERROR_SUCCESS;
  if (sd) LocalFree(sd);
  RegCloseKey(key);
  return ok;
}

static BOOL read_reg_sz(HKEY key, const wchar_t *name, wchar_t *out, DWORD cap) {
  DWORD type = 0, size = cap * sizeof(wchar_t);
  if (RegQueryValueExW(key, name, NULL, &type, (BYTE *)out, &size) != ERROR_SUCCESS || type != REG_SZ) return FALSE;
  out[cap - 1] = 0;
  if (size / sizeof(wchar_t) < cap) out[size / sizeof(wchar_t)] = 0;
  return out[0] != 0;
}

/* Arguments go on a command line: refuse anything that could break out of the quotes. */
static BOOL safe_arg(const wchar_t *s) {
  for (; *s; s++)
    if (*s == L'"' || (*s == L'\\' && s[1] == 0) || *s < 0x20) return FALSE;
  return TRUE;
}

/* Runs a child with stdout/stderr appended to `log`; with `wait_ms` waits for it and returns its exit code. */
static HANDLE spawn_child(wchar_t *cmdline, const wchar_t *log) {
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE out = CreateFileW(log, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  HANDLE nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING, 0, NULL);
  STARTUPINFOW si = {sizeof si};
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = nul;
  si.hStdOutput = out;
  si.hStdError = out;
  PROCESS_INFORMATION pi;
  BOOL ok = CreateProcessW(NULL, cmdline, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
  if (out != INVALID_HANDLE_VALUE) CloseHandle(out);
  if (nul != INVALID_HANDLE_VALUE) CloseHandle(nul);
  if (!ok) return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

/*
 * Empties `dir` (depth-bounded): the agent writes its embedded addons there at each start and
 * cannot remove them itself on Windows (a loaded DLL cannot be deleted). Runs while no agent runs.
 */
static void empty_dir(const wchar_t *dir, int depth) {
  if (depth > 8) return;
  wchar_t pattern[MAX_PATH * 2];
  _snwprintf(pattern, MAX_PATH * 2 - 1, L"%ls\\*", dir);
  pattern[MAX_PATH * 2 - 1] = 0;
  WIN32_FIND_DATAW fd;
  HANDLE h = FindFirstFileW(pattern, &fd);
  if (h == INVALID_HANDLE_VALUE) return;
  do {
    if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0) continue;
    wchar_t path[MAX_PATH * 2];
    _snwprintf(path, MAX_PATH * 2 - 1, L"%ls\\%ls", dir, fd.cFileName);
    path[MAX_PATH * 2 - 1] = 0;
    /* Never follow a link out of our folder. */
    if (fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
      if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) RemoveDirectoryW(path);
      else DeleteFileW(path);
    } else if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
      empty_dir(path, depth + 1);
      RemoveDirectoryW(path);
    } else {
      SetFileAttributesW(path, FILE_ATTRIBUTE_NORMAL);
      DeleteFileW(path);
    }
  } while (FindNextFileW(h, &fd));
  FindClose(h);
}

/* Waits `ms` or until the service is asked to stop; TRUE when asked to stop. */
static BOOL stop_requested(DWORD ms) { return WaitForSingleObject(g_stop_event, ms) == WAIT_OBJECT_0; }

/*
 * Enrols once from the MSI's key. TRUE when enrolled (now or before); FALSE = try again later.
 * The token is deleted only after a successful enrolment.
 */
static BOOL enroll_from_registry(const wchar_t *agent, const wchar_t *state, const wchar_t *log) {
  wchar_t identity[MAX_PATH + 32];
  _snwprintf(identity, MAX_PATH + 31, L"%ls\\identity.json", state);
  identity[MAX_PATH + 31] = 0;
  HKEY key;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, ENROLL_KEY, 0, KEY_READ | KEY_SET_VALUE | KEY_WOW64_64KEY, &key) != ERROR_SUCCESS)
    return TRUE; /* nothing to enrol from: enrolled by hand, or the agent reports "not enrolled" */
  if (!private_key(ENROLL_KEY))
    log_event(EVENTLOG_WARNING_TYPE, EV_SETUP_FAILED, L"登録キーのアクセス権を設定できません / cannot restrict the enrolment key");
  wchar_t console[512], token[512], fp[512];
  BOOL has_token = read_reg_sz(key, L"Token", token, 512);
  if (GetFileAttributesW(identity) != INVALID_FILE_ATTRIBUTES || !has_token) {
    if (has_token) RegDeleteValueW(key, L"Token"); /* already enrolled: the token is of no further use */
    RegCloseKey(key);
    return TRUE;
  }
  if (!read_reg_sz(key, L"Console", console, 512) || !read_reg_sz(key, L"CaFingerprint", fp, 512) || !safe_arg(console) || !safe_arg(token) || !safe_arg(fp)) {
    log_event(EVENTLOG_ERROR_TYPE, EV_ENROLL_FAILED, L"登録情報が不正です (CONSOLE / TOKEN / CA_FINGERPRINT) / enrolment settings are missing or invalid");
    SecureZeroMemory(token, sizeof token);
    RegCloseKey(key);
    return FALSE;
  }
  wchar_t cmd[2400];
  _snwprintf(cmd, 2399, L"\"%ls\" enroll --console \"%ls\" --token \"%ls\" --ca-fingerprint \"%ls\" --state \"%ls\"", agent, console, token, fp, state);
  cmd[2399] = 0;
  SecureZeroMemory(token, sizeof token);
  HANDLE child = spawn_child(cmd, log);
  SecureZeroMemory(cmd, sizeof cmd);
  DWORD code = 1;
  if (child) {
    if (WaitForSingleObject(child, 120000) != WAIT_OBJECT_0) TerminateProcess(child, 1);
    GetExitCodeProcess(child, &code);
    CloseHandle(child);
  }
  BOOL ok = code == 0 && GetFileAttributesW(identity) != INVALID_FILE_ATTRIBUTES;
  if (ok) {
    RegDeleteValueW(key, L"Token");
    log_event(EVENTLOG_INFORMATION_TYPE, EV_ENROLLED, L"管理コンソール %ls に登録しました / enrolled with the console %ls", console, console);
  } else {
    log_event(EVENTLOG_WARNING_TYPE, EV_ENROLL_FAILED, L"管理コンソール %ls への登録に失敗しました (終了コード %lu、再試行します) / enrolment with %ls failed (exit code %lu, will retry)", console, code, console, code);
  }
  RegCloseKey(key);
  return ok;
}

/* Asks the agent to stop as on Ctrl-C (Node: SIGINT → agent.stopped), then ends it after 15 s. */
static void stop_agent(HANDLE child) {
  SetConsoleCtrlHandler(NULL, TRUE); /* the wrapper itself ignores the Ctrl-C it sends */
  GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0);
  if (WaitForSingleObject(child, 15000) != WAIT_OBJECT_0) TerminateProcess(child, 1);
  WaitForSingleObject(child, 5000);
}

static void WINAPI service_main(DWORD argc, wchar_t **argv) {
  (void)argc; (void)argv;
  g_status_handle = RegisterServiceCtrlHandlerExW(SERVICE_NAME, control_handler, NULL);
  if (!g_status_handle) return;
  g_status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  set_state(SERVICE_START_PENDING, 10000);
  g_stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
  set_recovery();

  wchar_t self[MAX_PATH], agent[MAX_PATH + 32], data[MAX_PATH], state[MAX_PATH + 16], tmp[MAX_PATH + 16], log[MAX_PATH + 32];
  DWORD n = GetModuleFileNameW(NULL, self, MAX_PATH);
  wchar_t *slash = n > 0 && n < MAX_PATH ? wcsrchr(self, L'\\') : NULL;
  DWORD pd = GetEnvironmentVariableW(L"ProgramData", data, MAX_PATH - 16);
  if (!slash || pd == 0 || pd >= MAX_PATH - 16) {
    log_event(EVENTLOG_ERROR_TYPE, EV_SETUP_FAILED, L"パスを決定できません / cannot determine paths");
    g_status.dwWin32ExitCode = ERROR_PATH_NOT_FOUND;
    set_state(SERVICE_STOPPED, 0);
    return;
  }
  *slash = 0;
  _snwprintf(agent, MAX_PATH + 31, L"%ls\\sekimori-agent.exe", self);
  wcscat(data, L"\\Sekimori");
  _snwprintf(state, MAX_PATH + 15, L"%ls\\agent", data);
  _snwprintf(tmp, MAX_PATH + 15, L"%ls\\tmp", data);
  _snwprintf(log, MAX_PATH + 31, L"%ls\\agent.log", data);
  agent[MAX_PATH + 31] = state[MAX_PATH + 15] = tmp[MAX_PATH + 15] = log[MAX_PATH + 31] = 0;
  /* The agent writes its embedded addons to TMP and loads them: TMP must be closed to users. */
  if (!private_dir(data) || !private_dir(state) || !private_dir(tmp))
    log_event(EVENTLOG_WARNING_TYPE, EV_SETUP_FAILED, L"%ls のアクセス権を制限できません / cannot restrict access to %ls (error %lu)", data, data, GetLastError());
  /* The Credential Provider's key holds the terminal's credential (default_realm). */
  if (!private_key(CP_KEY))
    log_event(EVENTLOG_WARNING_TYPE, EV_SETUP_FAILED, L"Credential Provider のキーのアクセス権を設定できません / cannot restrict the Credential Provider key");
  SetEnvironmentVariableW(L"TMP", tmp);
  SetEnvironmentVariableW(L"TEMP", tmp);
  SetEnvironmentVariableW(L"SEKIMORI_AGENT_STATE", state);
  /* A console of our own (invisible in session 0) so that stop can send the agent Ctrl-C. */
  AllocConsole();
  set_state(SERVICE_RUNNING, 0);

  DWORD backoff = 1000;
  while (!stop_requested(0)) {
    if (!enroll_from_registry(agent, state, log)) {
      if (stop_requested(backoff)) break;
      backoff = backoff < 60000 ? backoff * 2 : 60000;
      continue;
    }
    wchar_t cmd[MAX_PATH * 2 + 64];
    _snwprintf(cmd, MAX_PATH * 2 + 63, L"\"%ls\" run --state \"%ls\"", agent, state);
    cmd[MAX_PATH * 2 + 63] = 0;
    empty_dir(tmp, 0);
    ULONGLONG started = GetTickCount64();
    HANDLE child = spawn_child(cmd, log);
    if (!child) {
      log_event(EVENTLOG_ERROR_TYPE, EV_CRASHED, L"エージェントを起動できません: %ls (エラー %lu) / cannot start the agent", agent, GetLastError());
    } else {
      log_event(EVENTLOG_INFORMATION_TYPE, EV_STARTED, L"エージェントを開始しました (PID %lu) / agent started", GetProcessId(child));
      HANDLE both[2] = {g_stop_event, child};
      DWORD w = WaitForMultipleObjects(2, both, FALSE, INFINITE);
      if (w == WAIT_OBJECT_0) {
        stop_agent(child);
        CloseHandle(child);
        break;
      }
      DWORD code = 0;
      GetExitCodeProcess(child, &code);
      CloseHandle(child);
      /* The agent never ends on its own while the service runs: a crash, or someone killed it. */
      log_event(EVENTLOG_WARNING_TYPE, EV_CRASHED, L"エージェントが予期せず終了しました (終了コード %lu)。改ざんの可能性があります。再起動します / the agent ended unexpectedly (exit code %lu): possible tampering, restarting", code, code);
      if (GetTickCount64() - started > 300000) backoff = 1000; /* it had been running fine */
    }
    if (stop_requested(backoff)) break;
    backoff = backoff < 60000 ? backoff * 2 : 60000;
  }
  log_event(EVENTLOG_INFORMATION_TYPE, EV_STOPPED, L"エージェントを停止しました (サービス停止) / agent stopped (service stop)");
  set_state(SERVICE_STOPPED, 0);
}

int wmain(int argc, wchar_t **argv) {
  (void)argc; (void)argv;
  SERVICE_TABLE_ENTRYW table[] = {{(wchar_t *)SERVICE_NAME, service_main}, {NULL, NULL}};
  if (!StartServiceCtrlDispatcherW(table)) {
    if (GetLastError() == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
      fwprintf(stderr, L"sekimori-service: Windows サービスとして起動されます (sc start SekimoriAgent) / runs as the Windows service SekimoriAgent\n");
      return 2;
    }
    return 1;
  }
  return 0;
}
