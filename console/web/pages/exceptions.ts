/** 一時許可: temporary exception requests and grants (the removable-media module owns the data). */
import { html } from '../html.js';
import { tr } from '../i18n.js';
import { page, type WebRouteSpec } from '../web.js';

export const exceptionRoutes: WebRouteSpec[] = [
  {
    method: 'GET',
    path: '/exceptions',
    access: 'session',
    handle(r) {
      return page(r, 'exceptions', '/exceptions', html`<p class="note">${tr(r.lang, 'exceptionsNotInstalled')}</p>`);
    },
  },
];
