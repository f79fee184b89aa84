/**
 * The console's feature registry, in migration order. Each feature folder has the same roles:
 * feature.ts (this registration), schema.ts (migrations), store.ts (the only code on its tables),
 * api.ts (routes), cli.ts, and its pages under web/pages/. Registering a feature is ONE line here.
 */
import type { ConsoleModule } from './module.js';
import { backboneModule } from './backbone/feature.js';
import { mfaIdentityModule, mfaModule } from './mfa/feature.js';
import { softwareModule } from './software/feature.js';
import { usbDevicesModule, usbModule } from './usb/feature.js';
import { webModule } from './web/feature.js';
import { reportModule } from './report/feature.js';
import { postureModule } from './posture/feature.js';
import { retentionModule } from './retention/feature.js';
import { siemModule } from './siem/feature.js';
import { renewalModule } from './core/renewal.js';

export const modules: ConsoleModule[] = [backboneModule, mfaModule, mfaIdentityModule, softwareModule, usbModule, usbDevicesModule, postureModule, webModule, reportModule, siemModule, retentionModule, renewalModule];
