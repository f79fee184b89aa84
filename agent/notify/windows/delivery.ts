/**
 * Windows delivery of notices: sekimori-notice.exe (notice.c) puts a message box on the active
 * console session's desktop with WTSSendMessageW — the service itself runs in session 0, which
 * has no desktop. The helper returns at once (bWait FALSE); the box closes itself after
 * BOX_SECONDS. Language: the agent's (SEKIMORI_LANG / LANG, default Japanese); the user's own
 * UI language is not read.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { lang as agentLang } from '../../../protocol/i18n.js';
import type { NoticeDelivery, NoticeSession } from '../notifier.js';

export const BOX_SECONDS = 120;
export const DELIVERY_BOUND_MS = 8_000;
const HELPER_NAME = 'sekimori-notice.exe';

/** Text → UTF-16LE hex: the helper's arguments stay ASCII whatever the text holds. */
export function utf16Hex(s: string): string {
  return Buffer.from(s.toWellFormed(), 'utf16le').toString('hex');
}

export function noticeHelperArgs(text: { summary: string; body: string }): string[] {
  // Windows message boxes break lines at \r\n.
  return [String(BOX_SECONDS), utf16Hex(text.summary), utf16Hex(text.body.replace(/\r?\n/g, '\r\n'))];
}

/** Exit codes of sekimori-notice.exe. */
export const NOTICE_EXIT = { sent: 0, nobody: 2, failed: 3, usage: 64 } as const;

export interface WindowsNoticeOptions {
  /** sekimori-notice.exe (default: next to the agent's executable; SEKIMORI_NOTICE_HELPER overrides). */
  helper?: string;
  /** Hard bound on the helper (ms); default DELIVERY_BOUND_MS. */
  boundMs?: number;
}

export class WindowsNoticeDelivery implements NoticeDelivery {
  readonly name = 'windows-wts';
  private readonly helper: string;
  private readonly boundMs: number;

  constructor(opts: WindowsNoticeOptions = {}) {
    this.boundMs = opts.boundMs ?? DELIVERY_BOUND_MS;
    this.helper = opts.helper ?? process.env.SEKIMORI_NOTICE_HELPER ?? join(dirname(process.execPath), HELPER_NAME);
  }

  /** Whoever is at the console: the helper finds the session, and says when there is none. */
  sessions(): NoticeSession[] {
    return [{ user: '', uid: 0, gid: 0, address: '', lang: agentLang() }];
  }

  deliver(_s: NoticeSession, text: { summary: string; body: string }): Promise<'shown' | 'nobody'> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let stderr = '';
      const done = (e: Error | null, r: 'shown' | 'nobody' = 'shown') => {
        if (settled) return;
        settled = true;
        clearTimeout(bound);
        if (e) reject(e);
        else resolve(r);
      };
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(this.helper, noticeHelperArgs(text), { stdio: ['ignore', 'ignore', 'pipe'], windowsHide: true, timeout: this.boundMs, killSignal: 'SIGKILL' });
      } catch (e) {
        done(e as Error);
        return;
      }
      const bound = setTimeout(() => {
        child.kill('SIGKILL');
        done(new Error(`${HELPER_NAME} did not finish within ${this.boundMs} ms`));
      }, this.boundMs + 500);
      bound.unref();
      child.stderr?.on('data', (b: Buffer) => {
        if (stderr.length < 1024) stderr += b.toString('utf8');
      });
      child.on('error', (e) => done(e));
      child.on('close', (code, signal) => {
        if (code === NOTICE_EXIT.sent) done(null);
        else if (code === NOTICE_EXIT.nobody) done(null, 'nobody');
        else done(new Error(`${HELPER_NAME} exited ${code ?? signal}: ${stderr.trim().slice(0, 300)}`));
      });
    });
  }
}
