/**
 * Windows posture readings, all through the registry (agent/windows/registry.ts): the device-install
 * restrictions and removable-storage policies the Windows USB plan writes, the privacyIDEA Credential
 * Provider's registration, and the machine inactivity limit (InactivityTimeoutSecs: Windows locks the
 * session after that many idle seconds; set by policy, so it is machine-wide and users cannot change it).
 * The local accounts that can log on come from sekimori-accounts.exe (NetUserEnum, accounts.c); the
 * console judges their MFA enrolment.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PostureControlReport } from '../../../protocol/posture.js';
import { RegExeRegistry, type RegKey, type WindowsRegistry } from '../../windows/registry.js';
import { RESTRICTIONS, RSA_ROOT } from '../../usb/windows/plan.js';
import type { PostureInputs, PosturePlatform } from '../platform.js';
import { enrolmentReport, report } from '../probe.js';
import { ACCOUNTS_HELPER, logonAccounts, parseAccounts, type AccountsListing } from './accounts.js';

export const CREDENTIAL_PROVIDERS = 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Authentication\\Credential Providers';
/** The privacyIDEA Credential Provider's CLSID (its installation guide). */
export const PRIVACYIDEA_CP_CLSID = '{7BAF541E-F8E0-4EDF-B69A-BD2771139E8E}';
export const PRIVACYIDEA_CP_SETTINGS = 'HKLM\\SOFTWARE\\Netknights GmbH\\PrivacyIDEA-CP';
export const SYSTEM_POLICIES = 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System';
/** Removable Disks class GUID (Removable Storage Access). */
const REMOVABLE_DISKS = '{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}';

const val = (k: RegKey | null, name: string) => k?.values.find((v) => v.name.toLowerCase() === name.toLowerCase()) ?? null;
const show = (k: string, name: string, v: ReturnType<typeof val>) => `${k}\\${name}=${v ? String(v.data) : '(absent)'}`;

/** Runs sekimori-accounts.exe (bounded: 15 s, 4 MiB) and parses its listing. */
export function runAccountsHelper(helper: string): Promise<AccountsListing> {
  return new Promise((resolve) => {
    execFile(helper, [], { timeout: 15_000, maxBuffer: 4 << 20, windowsHide: true }, (err, stdout) => {
      const parsed = parseAccounts(String(stdout ?? ''));
      if (parsed.ok || !err) return resolve(parsed);
      resolve({ ok: false, error: `${ACCOUNTS_HELPER}: ${safeErr(err)}` });
    });
  });
}
const safeErr = (e: Error & { code?: unknown }) => `${typeof e.code === 'string' || typeof e.code === 'number' ? e.code : ''} ${e.message}`.slice(0, 200);

/** The mfa_enrolment report from a listing: the accounts that can log on, for the console to judge. */
export function windowsEnrolmentReport(listing: AccountsListing | null): PostureControlReport {
  if (!listing) return report('mfa_enrolment', 'unknown', [`${ACCOUNTS_HELPER} not installed: local accounts not read`]);
  if (!listing.ok) return report('mfa_enrolment', 'unknown', [listing.error]);
  return enrolmentReport(logonAccounts(listing.accounts), null);
}

/** Pure over a registry (MemoryRegistry in tests) and the accounts listing (null: no helper). */
export async function readWindowsPosture(reg: WindowsRegistry, inputs: PostureInputs, accounts: AccountsListing | null = null): Promise<PostureControlReport[]> {
  const q = async (k: string): Promise<RegKey | null> => {
    try {
      return await reg.query(k);
    } catch {
      return null;
    }
  };
  const restrictions = await q(RESTRICTIONS);
  const rsa = await q(`${RSA_ROOT}\\${REMOVABLE_DISKS}`);
  const denyClasses = val(restrictions, 'DenyDeviceClasses');
  const denyWrite = val(rsa, 'Deny_Write');
  const denyRead = val(rsa, 'Deny_Read');
  const storageHeld = denyWrite?.data === 1 || denyRead?.data === 1;
  const usbEvidence = [`usb mode ${inputs.usbMode}`, show(RESTRICTIONS, 'DenyDeviceClasses', denyClasses), show(`${RSA_ROOT}\\${REMOVABLE_DISKS}`, 'Deny_Write', denyWrite), show(`${RSA_ROOT}\\${REMOVABLE_DISKS}`, 'Deny_Read', denyRead)];
  const usbOk = inputs.usbMode === 'enforce' && (denyClasses?.data === 1 || storageHeld);

  const cp = await q(`${CREDENTIAL_PROVIDERS}\\${PRIVACYIDEA_CP_CLSID}`);
  const cpSettings = await q(PRIVACYIDEA_CP_SETTINGS);
  const host = val(cpSettings, 'hostname');
  const cpPresent = cp !== null && typeof host?.data === 'string' && host.data !== '';

  const sys = await q(SYSTEM_POLICIES);
  const inactivity = val(sys, 'InactivityTimeoutSecs');
  const secs = inactivity?.type === 'REG_DWORD' ? inactivity.data : null;
  const slOk = secs !== null && secs > 0 && secs <= inputs.screenLock.maxIdleMinutes * 60;

  return [
    report('usb_enforced', usbOk ? 'ok' : 'fail', usbEvidence, { mode: inputs.usbMode }),
    report('usb_boot_hold', 'not_applicable', ['Windows: the device policies stay in the registry while the agent is stopped (no boot window)']),
    report('usb_readonly_rule', 'not_applicable', ['Windows: read-only media are Removable Storage Access Deny_Write, part of usb_enforced']),
    report('mfa_pam_services', cpPresent ? 'ok' : 'fail', [`${CREDENTIAL_PROVIDERS}\\${PRIVACYIDEA_CP_CLSID} ${cp ? 'registered' : 'absent'}`, show(PRIVACYIDEA_CP_SETTINGS, 'hostname', host)], { present: cpPresent }),
    windowsEnrolmentReport(accounts),
    report('screen_lock', secs === null ? 'fail' : slOk ? 'ok' : 'fail', [`maximum ${inputs.screenLock.maxIdleMinutes} min`, show(SYSTEM_POLICIES, 'InactivityTimeoutSecs', inactivity)], {
      idleDelaySeconds: secs,
      lockEnabled: secs === null ? null : secs > 0,
      lockedDown: secs !== null,
    }),
  ];
}

/** sekimori-accounts.exe beside the agent's executable (the MSI installs it there); SEKIMORI_ACCOUNTS_HELPER overrides. */
export function accountsHelperPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SEKIMORI_ACCOUNTS_HELPER || join(dirname(process.execPath), ACCOUNTS_HELPER);
}

export class WindowsPosturePlatform implements PosturePlatform {
  readonly name = 'windows';
  constructor(
    private readonly reg: WindowsRegistry = new RegExeRegistry({}),
    private readonly accounts: () => Promise<AccountsListing | null> = async () => {
      const helper = accountsHelperPath();
      return existsSync(helper) ? runAccountsHelper(helper) : null;
    },
  ) {}
  async read(inputs: PostureInputs): Promise<PostureControlReport[]> {
    return readWindowsPosture(this.reg, inputs, await this.accounts());
  }
}
