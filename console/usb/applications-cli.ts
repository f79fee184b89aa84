/** `sekimori-console application list [--all] | approve ID [--hours N] [--comment TEXT] | reject ID [--comment TEXT]` (--by NAME: the deciding account). */
import { parseArgs } from 'node:util';
import { safeText } from '../../protocol/text.js';
import { withConsole, type CliCommand } from '../module.js';
import { ApplicationError, decideApplication, listApplications, type Application } from './applications-store.js';

const USAGE = 'application list [--all] | approve ID [--hours N] [--comment TEXT] | reject ID [--comment TEXT]   (--data DIR --by NAME [--json])';

const line = (a: Application) =>
  `${a.id}  ${safeText(a.ref, 16)}  ${safeText(a.hostname, 40)}  ${safeText(a.staffUser, 32)}  ${a.vendorId}:${a.productId} ${safeText(a.product, 40)}  ${a.hours}h  ${a.status}${a.stale ? ' (stale)' : ''}  ${safeText(a.reason, 80)}\n`;

export const applicationCommand: CliCommand = {
  summary: USAGE + '   端末からの一時許可の申請 / applications from terminals',
  run(args, open) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { data: { type: 'string' }, all: { type: 'boolean', default: false }, hours: { type: 'string' }, comment: { type: 'string', default: '' }, by: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    const [action, id] = positionals;
    const out = (x: unknown, human: string) => process.stdout.write(values.json ? JSON.stringify(x, null, 2) + '\n' : human);
    if (action === 'list') {
      return withConsole(open, (ctx) => {
        const list = listApplications(ctx, { all: values.all });
        out(list, list.length ? list.map(line).join('') : '(申請なし / no applications)\n');
        return 0;
      });
    }
    if ((action === 'approve' || action === 'reject') && id) {
      // Who decides must be named: the approver is compared with the applicant.
      if (!values.by) {
        process.stderr.write(`--by NAME が必要です / --by NAME is required\nusage: sekimori-console ${USAGE}\n`);
        return 2;
      }
      const hours = values.hours === undefined ? undefined : /^\d{1,16}$/.test(values.hours) ? Number(values.hours) : NaN;
      return withConsole(open, (ctx) => {
        try {
          const a = decideApplication(ctx, id, { decision: action, actor: safeText(values.by, 64), ...(hours !== undefined ? { hours } : {}), comment: values.comment });
          out(a, `${action === 'approve' ? '承認しました / approved' : '却下しました / rejected'}:\n${line(a)}`);
          return 0;
        } catch (e) {
          if (!(e instanceof ApplicationError)) throw e;
          process.stderr.write(e.message + '\n');
          return 1;
        }
      });
    }
    process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n`);
    return 2;
  },
};
