/** A refusal of an MFA administration step, shown to the administrator as it is (Japanese / English). Its own file: identity.ts and store.ts both throw it. */
export class MfaError extends Error {}
