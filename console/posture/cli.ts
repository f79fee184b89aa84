/** `sekimori-console posture --data DIR [--json]`: the terminals × controls matrix (issue 16). */
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { POSTURE_CONTROLS } from '../../protocol/posture.js';
import { safeText } from '../../protocol/text.js';
import { withConsole, type CliCommand } from '../module.js';
import { postureMatrix } from './store.js';

const dataOpt = { data: { type: 'string' as const, default: process.env.SEKIMORI_CONSOLE_DATA ?? '/var/lib/sekimori-console' } };

export const postureCommand: CliCommand = {
  summary: 'posture --data DIR [--json]   端末ごとの対策の実施状況 / each terminal\'s controls, in place or not',
  run(args, open) {
    const { values } = parseArgs({ args, options: { ...dataOpt, json: { type: 'boolean', default: false } } });
    return withConsole(open, (ctx) => {
      const rows = postureMatrix(ctx);
      if (values.json) {
        process.stdout.write(JSON.stringify({ controls: POSTURE_CONTROLS, terminals: rows }, null, 2) + '\n');
        return 0;
      }
      process.stdout.write(`${t('端末', 'terminal').padEnd(24)} ${t('適合', 'compliant').padEnd(10)} ${POSTURE_CONTROLS.join(' ')}\n`);
      for (const r of rows) {
        const cells = POSTURE_CONTROLS.map((c) => {
          const v = r.verdicts.find((x) => x.control === c);
          return (v ? (v.ok ? 'ok' : 'NG') : '-').padEnd(c.length);
        });
        const state = r.compliant === null ? t('未報告', 'no report') : r.compliant ? t('適合', 'yes') : t('不適合', 'NO');
        process.stdout.write(`${safeText(r.hostname, 24).padEnd(24)} ${state.padEnd(10)} ${cells.join(' ')}\n`);
        for (const v of r.verdicts) if (!v.ok) process.stdout.write(`    ${v.control}: ${safeText(v.why, 200)}\n`);
      }
      return 0;
    });
  },
};
