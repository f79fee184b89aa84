/** `sekimori-console usb-exception …` — temporary USB exceptions and their requests. */
import { parseArgs } from 'node:util';
import { safeText } from '../../protocol/text.js';
import { withConsole, type CliCommand } from '../module.js';
import { exceptionDuration } from './device.js';
import { decideRequest, grantException, listExceptions, listRequests, requestException, revokeException, RequestError, type ExceptionRequest, type UsbExceptionRow } from './store.js';

const USAGE =
  'usb-exception grant --agent ID --device VID:PID[:SERIAL] or VID:PID#SERIAL_HEX --for 2h [--reason TEXT] [--readonly] | list [--agent ID] [--all] | revoke ID | ' +
  'request --agent ID --device … --for 2h --reason TEXT [--user STAFF] [--readonly] | requests [--all] | approve REQ | reject REQ [--reason TEXT]   (--data DIR [--by NAME] [--json])';

export const usbExceptionCommand: CliCommand = {
  summary: USAGE + '   外部記録媒体の一時許可 / temporary USB exceptions',
  run(args, open) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        agent: { type: 'string' },
        device: { type: 'string' },
        for: { type: 'string' },
        reason: { type: 'string', default: '' },
        readonly: { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        by: { type: 'string', default: 'cli' },
        user: { type: 'string', default: '' },
        json: { type: 'boolean', default: false },
      },
    });
    const [action, arg] = positionals;
    const out = (x: unknown, human: string) => process.stdout.write(values.json ? JSON.stringify(x, null, 2) + '\n' : human);
    const actor = safeText(values.by, 64);
    const line = (e: UsbExceptionRow) =>
      `${e.id}  ${e.agentId}  ${e.vendorId}:${e.productId}:${e.serial === null ? '*' : safeText(e.serial, 64)}  ${e.access === 'readonly' ? '読み取り専用/readonly' : '許可/allow'}  ` +
      `〜${e.expiresAt}  ${e.active ? '有効/active' : e.revokedAt ? '取消/revoked' : '期限切れ/expired'}  ${safeText(e.reason, 80)}\n`;
    if (action === 'grant') {
      const forMs = values.for ? exceptionDuration(values.for) : null;
      if (!values.agent || !values.device || forMs === null) {
        process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n(--for: 90s, 30m, 2h, 1d; at most 30d)\n`);
        return 2;
      }
      return withConsole(open, (ctx) => {
        const e = grantException(ctx, { agentId: values.agent!, device: values.device!, forMs, reason: safeText(values.reason, 500), access: values.readonly ? 'readonly' : 'allow', actor });
        out(e, `一時許可を登録しました / exception granted:\n${line(e)}`);
        return 0;
      });
    }
    if (action === 'list') {
      return withConsole(open, (ctx) => {
        const list = listExceptions(ctx, { agentId: values.agent, all: values.all });
        out(list, list.length ? list.map(line).join('') : '(一時許可なし / no exceptions)\n');
        return 0;
      });
    }
    if (action === 'revoke' && arg) {
      return withConsole(open, (ctx) => {
        const e = revokeException(ctx, arg, actor);
        out(e, `一時許可を取り消しました / exception revoked:\n${line(e)}`);
        return 0;
      });
    }
    const reqLine = (q: ExceptionRequest) =>
      `${q.id}  ${q.agentId}  ${q.vendorId}:${q.productId}:${q.serial === null ? '*' : safeText(q.serial, 64)}  ${q.status}  ${safeText(q.staffUser, 32)}  ${safeText(q.requestedBy, 32)}  ${safeText(q.reason, 80)}\n`;
    const decided = (f: () => number) => {
      try {
        return f();
      } catch (e) {
        if (!(e instanceof RequestError)) throw e;
        process.stderr.write(e.message + '\n');
        return 1;
      }
    };
    if (action === 'request') {
      const forMs = values.for ? exceptionDuration(values.for) : null;
      if (!values.agent || !values.device || forMs === null || !values.reason) {
        process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n`);
        return 2;
      }
      return withConsole(open, (ctx) =>
        decided(() => {
          const q = requestException(ctx, { agentId: values.agent!, device: values.device!, forMs, access: values.readonly ? 'readonly' : 'allow', staffUser: safeText(values.user, 64), reason: safeText(values.reason, 500), actor });
          out(q, `一時許可を申請しました / exception requested:\n${reqLine(q)}`);
          return 0;
        }),
      );
    }
    if (action === 'requests') {
      return withConsole(open, (ctx) => {
        const list = listRequests(ctx, { all: values.all });
        out(list, list.length ? list.map(reqLine).join('') : '(申請なし / no requests)\n');
        return 0;
      });
    }
    if ((action === 'approve' || action === 'reject') && arg) {
      return withConsole(open, (ctx) =>
        decided(() => {
          const r = decideRequest(ctx, arg, action, actor, safeText(values.reason, 500));
          out(r, `${action === 'approve' ? '承認しました / approved' : '却下しました / rejected'}:\n${reqLine(r.request)}${r.grant ? line(r.grant) : ''}`);
          return 0;
        }),
      );
    }
    process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n`);
    return 2;
  },
};
