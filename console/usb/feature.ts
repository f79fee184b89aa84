/**
 * The removable-media feature as the console loads it (console/modules.ts): temporary exceptions
 * (一時許可) and their requests. Same shape as every feature folder: schema.ts (migrations), store.ts
 * (the only code on its tables), device.ts (device specs, pure), api.ts (routes), cli.ts; the page
 * is console/web/pages/exceptions.ts.
 */
import type { ConsoleModule } from '../module.js';
import { usbRoutes } from './api.js';
import { usbExceptionCommand } from './cli.js';
import { usbMigrations } from './schema.js';

export const usbModule: ConsoleModule = {
  name: 'usb',
  migrations: usbMigrations,
  routes: usbRoutes,
  commands: { 'usb-exception': usbExceptionCommand },
};
