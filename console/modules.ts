/** The console's feature modules, in migration order. */
import type { ConsoleModule } from './module.js';
import { backboneModule } from './backbone/module.js';
import { mfaModule } from './mfa/module.js';
import { mfaIdentityModule } from './mfa/identity.js';
import { softwareModule } from './software/module.js';
import { usbModule } from './usb/module.js';
import { webModule } from './web/module.js';

export const modules: ConsoleModule[] = [backboneModule, mfaModule, mfaIdentityModule, softwareModule, usbModule, webModule];
