/**
 * The removable-media feature as the console loads it (console/modules.ts): temporary exceptions
 * (一時許可) and their requests. Same shape as every feature folder: schema.ts (migrations), store.ts
 * (the only code on its tables), device.ts (device specs, pure), api.ts (routes), cli.ts; the page
 * is console/web/pages/exceptions.ts.
 *
 * The device inventory (機器一覧) is a module of its own here: devices.ts (pure: sightings and the
 * policy changes made from a row), devices-store.ts (its table, derived from the stored events by the tick), devices-cli.ts;
 * its page is console/web/pages/devices.ts.
 */
import type { ConsoleModule } from '../module.js';
import { usbRoutes } from './api.js';
import { applicationCommand } from './applications-cli.js';
import { applicationRoutes } from './applications-api.js';
import { applicationsCatchUpFor } from './applications-store.js';
import { usbExceptionCommand } from './cli.js';
import { devicesCommand } from './devices-cli.js';
import { inventoryCatchUpFor } from './devices-store.js';
import { usbDeviceMigrations, usbMigrations } from './schema.js';

export const usbModule: ConsoleModule = {
  name: 'usb',
  migrations: usbMigrations,
  routes: (ctx) => [...usbRoutes(ctx), ...applicationRoutes(ctx)],
  commands: { 'usb-exception': usbExceptionCommand, application: applicationCommand },
  // 申請 (issue 15): applications sent from terminals, read from the stored events in small steps.
  tick: (ctx) => applicationsCatchUpFor(ctx, 10),
};

/** 機器一覧: its own migration history (module name 'usb-devices'), `devices` CLI. */
export const usbDevicesModule: ConsoleModule = {
  name: 'usb-devices',
  migrations: usbDeviceMigrations,
  commands: { devices: devicesCommand },
  // Derived from stored events off the ingest path: ~20 ms a second at most, like the web rollup.
  tick: (ctx) => inventoryCatchUpFor(ctx.db, 20),
};
