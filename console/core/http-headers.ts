/**
 * Headers every answer of the console carries, whichever route (or refusal) produced it. Here,
 * not in web/, because the HTTP layer adds them to its own refusals (404, 421, 429, …) too;
 * console/web/web.ts re-exports them under their old names.
 */
export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=()',
  'strict-transport-security': 'max-age=31536000',
};

/** Defaults under a route's own headers: answers are never cached or sniffed unless a route says so. */
export const BASE_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  ...SECURITY_HEADERS,
};
