/**
 * `xwd` output → PNG, for screenshots of an Xvfb screen without ImageMagick. XWD: a big-endian
 * header (X11 XWDFileHeader), the window name, the colour map, then ZPixmap rows; handled here:
 * TrueColor at 24 or 32 bits per pixel, which is what Xvfb -screen WxHx24 gives.
 */
import { crc32, deflateSync } from 'node:zlib';

export interface Rgb {
  width: number;
  height: number;
  /** RGB triples, row by row. */
  data: Buffer;
}

export function parseXwd(buf: Buffer): Rgb {
  const f = (i: number) => buf.readUInt32BE(i * 4);
  const headerSize = f(0);
  const [width, height, byteOrder, bpp, bytesPerLine] = [f(4), f(5), f(7), f(11), f(12)];
  const [redMask, greenMask, blueMask, ncolors] = [f(14), f(15), f(16), f(19)];
  if (bpp !== 32 && bpp !== 24) throw new Error(`xwd: ${bpp} bits per pixel not handled`);
  if (width > 16384 || height > 16384) throw new Error('xwd: image too large');
  const start = headerSize + ncolors * 12;
  if (buf.length < start + height * bytesPerLine) throw new Error('xwd: truncated');
  const shift = (m: number) => (m ? 31 - Math.clz32(m & -m) : 0);
  const [rs, gs, bs] = [shift(redMask), shift(greenMask), shift(blueMask)];
  const data = Buffer.alloc(width * height * 3);
  const step = bpp / 8;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = start + y * bytesPerLine + x * step;
      let p = 0;
      for (let k = 0; k < step; k++) p += buf[o + (byteOrder === 0 ? k : step - 1 - k)]! * 2 ** (8 * k);
      const q = (y * width + x) * 3;
      data[q] = ((p & redMask) >>> rs) & 0xff;
      data[q + 1] = ((p & greenMask) >>> gs) & 0xff;
      data[q + 2] = ((p & blueMask) >>> bs) & 0xff;
    }
  }
  return { width, height, data };
}

function chunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(tb));
  return Buffer.concat([len, tb, crc]);
}

export function encodePng(img: Rgb): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(img.width, 0);
  ihdr.writeUInt32BE(img.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc((img.width * 3 + 1) * img.height);
  for (let y = 0; y < img.height; y++) {
    raw[y * (img.width * 3 + 1)] = 0; // filter: none
    img.data.copy(raw, y * (img.width * 3 + 1) + 1, y * img.width * 3, (y + 1) * img.width * 3);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Pixels that differ from the top-left one (the background): something was drawn. */
export function drawnPixels(img: Rgb): number {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 3) {
    if (img.data[i] !== img.data[0] || img.data[i + 1] !== img.data[1] || img.data[i + 2] !== img.data[2]) n++;
  }
  return n;
}
