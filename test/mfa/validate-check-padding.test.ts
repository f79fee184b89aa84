/** /validate/check pads the work a recovery-shaped code costs, so timing does not tell who is enrolled (issue 10 item 9). */
import { describe, expect, it } from 'vitest';
import type { MfaReason } from '../../protocol/mfa/decide.js';
import { recoveryPadding } from '../../console/mfa/validate-check.js';

describe('recoveryPadding', () => {
  it.each<[MfaReason, number, number]>([
    ['invalid_user', 0, 10],
    ['not_enrolled', 0, 10],
    ['not_confirmed', 10, 10],
    ['disabled', 10, 10],
    ['locked', 10, 10],
    ['not_assigned', 10, 10],
    ['wrong_code', 10, 0], // decide() compared all ten
    ['wrong_code', 3, 7], // three compared, seven more
    ['wrong_code', 0, 10],
    ['wrong_code', 30, 0],
    ['locked', 30, 30], // as long as a wrong code for that user would take
    ['recovery', 10, 0], // accepted: nothing to hide
  ])('%s with %i unused codes: %i dummy comparisons', (reason, unused, want) => {
    expect(recoveryPadding(reason, unused)).toBe(want);
  });
});
