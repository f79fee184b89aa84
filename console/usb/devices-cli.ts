/** `sekimori-console devices list` — the device inventory (機器一覧) across terminals. */
import { parseArgs } from 'node:util';
import { safeText } from '../../protocol/text.js';
import { listAgents } from '../backbone/store.js';
import { withConsole, type CliCommand } from '../module.js';
import { parseDeviceQuery } from './devices.js';
import { inventoryCatchUpFor, listDevices, type InventoryDevice } from './devices-store.js';

const USAGE = 'devices list [--search TEXT] [--terminal ID] [--verdict usb.blocked|usb.allowed|usb.readonly|usb.exception_used|usb.would_block] [--limit N] (--data DIR [--json])';

/** One line per device; every field came from a terminal, so it is shown through safeText. */
export function deviceLine(d: InventoryDevice, hostname: string | undefined): string {
  const serial = d.serial ? safeText(d.serial, 64) : '-';
  return (
    [
      safeText(hostname ?? d.agentId.slice(0, 8), 40),
      `${d.vendorId}:${d.productId}`,
      safeText(`${d.manufacturer} ${d.product}`.trim() || '-', 80),
      `serial=${serial}${d.serialHex ? ` #${d.serialHex.slice(0, 32)}${d.serialHex.length > 32 ? '…' : ''}` : ''}`,
      `if=${d.interfaces.join(',') || '-'}`,
      d.lastType,
      `rule=${safeText(d.lastRule, 64)}`,
      `${d.firstSeen}〜${d.lastSeen}`,
      `×${d.seen}`,
    ].join('  ') + '\n'
  );
}

export const devicesCommand: CliCommand = {
  summary: USAGE + '   機器一覧 / USB device inventory',
  run(args, open) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        search: { type: 'string', default: '' },
        terminal: { type: 'string', default: '' },
        verdict: { type: 'string', default: '' },
        limit: { type: 'string', default: '200' },
        json: { type: 'boolean', default: false },
      },
    });
    const limit = Number(values.limit);
    const parsed = parseDeviceQuery((k) => (k === 'q' ? values.search : k === 'terminal' ? values.terminal : k === 'verdict' ? values.verdict : null));
    if (positionals[0] !== 'list' || 'error' in parsed || !Number.isSafeInteger(limit) || limit < 1 || limit > 500) {
      process.stderr.write(`${'error' in parsed ? parsed.error + '\n' : ''}使い方 / usage: sekimori-console ${USAGE}\n(--limit: 1..500)\n`);
      return 2;
    }
    return withConsole(open, (ctx) => {
      inventoryCatchUpFor(ctx.db, 10_000); // the serving console may be behind by a second; a stopped one by more
      const p = listDevices(ctx, parsed.query, limit);
      if (values.json) {
        process.stdout.write(JSON.stringify({ total: p.total, devices: p.devices }, null, 2) + '\n');
        return 0;
      }
      const names = new Map(listAgents(ctx).map((a) => [a.id, a.hostname]));
      process.stdout.write(p.devices.length ? p.devices.map((d) => deviceLine(d, names.get(d.agentId))).join('') : '(機器なし / no devices)\n');
      if (p.total > p.devices.length) process.stdout.write(`… ${p.devices.length} / ${p.total} (--search / --limit)\n`);
      return 0;
    });
  },
};
