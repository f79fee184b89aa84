/**
 * The local accounts of a Windows terminal (sekimori-accounts.exe beside the agent: NetUserEnum
 * level 20, see accounts.c), read for the posture's mfa_enrolment control. Pure parsing here; the
 * agent lists the accounts that can log on and the console judges which hold an MFA enrolment
 * (console/posture/store.ts fillEnrolment), as for Linux: Windows logon MFA is the privacyIDEA
 * Credential Provider asking the console's /validate/check for that user name, so an account is
 * enrolled exactly when the console has an active enrolment for its name.
 */
import { safeText } from '../../../protocol/text.js';

export const ACCOUNTS_HELPER = 'sekimori-accounts.exe';
export const UF_ACCOUNTDISABLE = 0x2;
const MAX_ACCOUNTS = 10_000;

export interface WindowsAccount {
  name: string;
  flags: number;
}

export type AccountsListing = { ok: true; accounts: WindowsAccount[] } | { ok: false; error: string };

/** UTF-16LE code units as the helper prints them (4 hex digits per unit, low byte first). */
function utf16Hex(hex: string): string | null {
  if (hex.length === 0 || hex.length % 4 !== 0 || !/^[0-9a-f]+$/.test(hex)) return null;
  return Buffer.from(hex, 'hex').toString('utf16le');
}

/** The helper's whole output; a listing without its END line (or with a wrong count) is not used. */
export function parseAccounts(text: string): AccountsListing {
  const accounts: WindowsAccount[] = [];
  let end: number | null = null;
  for (const raw of text.split(/\r?\n/, MAX_ACCOUNTS + 2)) {
    const line = raw.trim();
    if (!line) continue;
    const err = /^ERR ([0-9]{1,10})$/.exec(line);
    if (err) return { ok: false, error: `NetUserEnum failed (status ${err[1]})` };
    const e = /^END ([0-9]{1,10})$/.exec(line);
    if (e) {
      end = Number(e[1]);
      break;
    }
    const m = /^A ([0-9a-f]{1,8}) ([0-9a-f]{4,2048})$/.exec(line);
    const name = m ? utf16Hex(m[2]!) : null;
    if (!m || name === null) return { ok: false, error: 'unexpected output from sekimori-accounts.exe' };
    accounts.push({ name: safeText(name, 256), flags: parseInt(m[1]!, 16) });
  }
  if (end === null || end !== accounts.length) return { ok: false, error: 'incomplete listing from sekimori-accounts.exe' };
  return { ok: true, accounts };
}

/** Accounts that can log on: not disabled (a locked-out account can log on again once the lockout ends). */
export function logonAccounts(accounts: readonly WindowsAccount[]): { name: string; evidence: string }[] {
  return accounts
    .filter((a) => (a.flags & UF_ACCOUNTDISABLE) === 0)
    .map((a) => ({ name: a.name, evidence: `NetUserEnum: ${a.name} (flags 0x${a.flags.toString(16)})` }));
}
