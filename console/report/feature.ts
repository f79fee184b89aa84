/**
 * 自己点検レポート as a console module: no tables of its own (it reads the others' through their
 * stores), the `evidence` command. The report page itself is served by the web module
 * (console/web/pages/report.ts, which includes GET /report/evidence).
 */
import type { ConsoleModule } from '../module.js';
import { evidenceCommand } from './cli.js';

export const reportModule: ConsoleModule = {
  name: 'report',
  migrations: [],
  commands: { evidence: evidenceCommand },
};
