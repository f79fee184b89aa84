/** The newest/older links shared by the events, devices and 持ち出しログ lists. */
import { describe, expect, it } from 'vitest';
import { pager } from '../../console/web/pages/common.js';

describe('pager', () => {
  it('an older page links to the newest with the same filter, and to the next cursor', () => {
    const h = pager('ja', '/events', { type: 'usb.blocked', agent: 'a"b' }, true, '2026-11-30T00:00:00.000Z~5').value;
    expect(h).toContain('href="/events?type=usb.blocked&amp;agent=a%22b"');
    expect(h).toContain('id="older" href="/events?type=usb.blocked&amp;agent=a%22b&amp;before=2026-11-30T00%3A00%3A00.000Z%7E5"');
  });
  it('the first page has no newest link; the last page no older link', () => {
    expect(pager('en', '/devices', {}, false, 'x~1').value).not.toContain('Newest');
    const last = pager('en', '/exports', {}, true, null).value;
    expect(last).not.toContain('id="older"');
    expect(last).toContain('href="/exports"');
  });
});
