/**
 * The exception's matching key is the raw serial (serialHex); exceptions stored before it keep
 * their text match. Device specs round-trip: the spec the console offers for a device names that
 * device and no other.
 */
import { describe, expect, it } from 'vitest';
import { exceptionMatches } from '../../agent/usb/decide.js';
import { deviceSpecOf, parseDeviceSpec, serialHexOf } from '../../console/usb/device.js';
import { grantSpecOf } from '../../console/web/pages/exceptions.js';

const dev = (serial: Buffer | null, vendorId = '0781', productId = '5567') => ({ vendorId, productId, serial });
const hex = (b: Buffer) => b.toString('hex');

describe('exceptionMatches', () => {
  const ctl = Buffer.from('AB\u001bCD');
  const bad = Buffer.from([0x41, 0xff, 0xfe]);
  it.each([
    ['serialHex: the same bytes', { vendorId: '0781', productId: '5567', serial: 'x', serialHex: hex(ctl) }, dev(ctl), true],
    ['serialHex: other bytes with the same display', { vendorId: '0781', productId: '5567', serial: 'AB\\x1bCD', serialHex: hex(ctl) }, dev(Buffer.from('AB\\x1bCD')), false],
    ['serialHex: invalid UTF-8, the same bytes', { vendorId: '0781', productId: '5567', serial: 'A\ufffd\ufffd', serialHex: hex(bad) }, dev(bad), true],
    ['serialHex: invalid UTF-8 that decodes the same', { vendorId: '0781', productId: '5567', serial: 'A\ufffd\ufffd', serialHex: hex(bad) }, dev(Buffer.from([0x41, 0xfe, 0xff])), false],
    ['serialHex: the device has no serial', { vendorId: '0781', productId: '5567', serial: 'x', serialHex: '41' }, dev(null), false],
    ['serialHex: a zero-length serial', { vendorId: '0781', productId: '5567', serial: 'x', serialHex: '41' }, dev(Buffer.alloc(0)), false],
    ['serialHex: upper-case hex from an old tool still compares', { vendorId: '0781', productId: '5567', serial: 'x', serialHex: 'ABCD' }, dev(Buffer.from([0xab, 0xcd])), true],
    ['serialHex: another product', { vendorId: '0781', productId: '5568', serial: 'x', serialHex: hex(ctl) }, dev(ctl), false],
    ['serialHex null, serial null: any device of the VID:PID', { vendorId: '0781', productId: '5567', serial: null, serialHex: null }, dev(Buffer.from('anything')), true],
    ['old shape: serial text, same text', { vendorId: '0781', productId: '5567', serial: 'EXC0001' }, dev(Buffer.from('EXC0001')), true],
    ['old shape: serial text, other text', { vendorId: '0781', productId: '5567', serial: 'EXC0001' }, dev(Buffer.from('EXC0002')), false],
    ['old shape: serial null, no serial', { vendorId: '0781', productId: '5567', serial: null }, dev(null), true],
    ['old shape: upper-case ids', { vendorId: '0781', productId: '5567', serial: 'S' }, dev(Buffer.from('S'), '0781', '5567'), true],
  ] as const)('%s', (_name, e, d, want) => {
    expect(exceptionMatches(e, d)).toBe(want);
  });
});

describe('parseDeviceSpec', () => {
  it.each([
    ['VID:PID', '0781:5567', { vendorId: '0781', productId: '5567', serial: null, serialHex: null }],
    ['upper-case ids', '0781:55AB', { vendorId: '0781', productId: '55ab', serial: null, serialHex: null }],
    ['text serial (its key is its UTF-8)', '0781:5567:EXC0001', { serial: 'EXC0001', serialHex: hex(Buffer.from('EXC0001')) }],
    ['text serial with colons', '0781:5567:12:34', { serial: '12:34', serialHex: hex(Buffer.from('12:34')) }],
    ['hex serial', '0781:5567#41421b4344', { serial: 'AB\\x1bCD', serialHex: '41421b4344' }],
    ['hex serial, upper case', '0781:5567#41FF', { serialHex: '41ff' }],
    ['hex serial of spaces: shown by its hex', '0781:5567#2020', { serial: '#2020', serialHex: '2020' }],
    ['hex serial of 300 bytes: shown cut, matched whole', '0781:5567#' + '53'.repeat(300), { serialHex: '53'.repeat(300) }],
  ] as const)('%s', (_name, spec, want) => {
    expect(parseDeviceSpec(spec)).toMatchObject(want);
  });
  it.each([
    ['empty', ''],
    ['no PID', '0781'],
    ['odd hex', '0781:5567#abc'],
    ['empty hex', '0781:5567#'],
    ['hex with a non-hex digit', '0781:5567#zz'],
    ['hex too long', '0781:5567#' + 'ab'.repeat(1025)],
    ['blank text serial', '0781:5567:   '],
    ['text serial over 255', '0781:5567:' + 'x'.repeat(256)],
    ['a path as VID', '../x:5567'],
  ])('refuses %s', (_name, spec) => {
    expect(parseDeviceSpec(spec)).toBeNull();
  });
});

describe('deviceSpecOf → parseDeviceSpec names the same device', () => {
  it.each([
    ['plain', Buffer.from('4C530001')],
    ['control characters', Buffer.from('AB\u001bCD')],
    ['invalid UTF-8', Buffer.from([0x41, 0xff, 0xfe])],
    ['long', Buffer.alloc(200, 0x53)],
    ['colon and hash', Buffer.from('12:34#56')],
    ['leading and trailing space', Buffer.from(' S ')],
    ['only spaces', Buffer.from('   ')],
    ['C1 control', Buffer.from('a\u009bb')],
  ])('%s', (_name, serial) => {
    const spec = deviceSpecOf({ vendorId: '0781', productId: '5567', serial: null, serialHex: hex(serial) });
    expect(parseDeviceSpec(spec)?.serialHex).toBe(hex(serial));
    // The page trims what is typed in the form: the spec survives that too.
    expect(parseDeviceSpec(spec.trim())?.serialHex).toBe(hex(serial));
  });
});

describe('serialHexOf: the wire form of a stored key', () => {
  it.each([
    ['a new row', 'S', '53', { serialHex: '53' }],
    ['a row from before serial_hex: old shape (no member)', 'S', null, {}],
    ['any device', null, null, { serialHex: null }],
  ] as const)('%s', (_name, serial, serialHex, want) => {
    expect(serialHexOf(serial, serialHex)).toEqual(want);
  });
});

describe('grantSpecOf (the exceptions page) reads the event through its declaration', () => {
  const base = {
    kind: 'usb', mode: 'enforce', port: '1-1', busnum: 1, devnum: 2, vendorId: '0781', productId: '5567', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'm', product: 'p', serial: 'AB\\x1bCD', descriptorHash: '', rule: 'class:08',
    partial: false, readonly: false, exceptionId: null,
  };
  it.each([
    ['serialHex: the raw serial', { ...base, serialHex: '41421b4344' }, '0781:5567#41421b4344'],
    ['serialHex of a plain serial: the text form', { ...base, serial: 'S1', serialHex: '5331' }, '0781:5567:S1'],
    ['no serial', { ...base, serial: '', serialHex: null }, '0781:5567'],
    ['a zero-length serial', { ...base, serial: '', serialHex: '' }, '0781:5567'],
    ['an event from before serialHex: its display serial, as before', { ...base, serial: 'S1' }, '0781:5567:S1'],
    ['a built-in drive: nothing to grant', { kind: 'optical', mode: 'enforce', device: 'sr0', rule: 'optical:block', partitions: [] }, ''],
    ['data that fails the declaration: nothing taken from it', { vendorId: '0781', productId: '5567', serial: 'S1' }, ''],
    ['a hostile vendorId', { ...base, vendorId: '0781" onmouseover="x', serialHex: '53' }, ''],
    ['not an object', 'x', ''],
  ])('%s', (_name, data, want) => {
    expect(grantSpecOf(data)).toBe(want);
  });
});
