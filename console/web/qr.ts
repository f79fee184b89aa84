/** QR codes as SVG drawn here (synchronous, no script): only modules of our own otpauth URI. */
import QRCode from 'qrcode';

export function qrSvg(text: string, scale = 5, margin = 4): string {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const size = qr.modules.size;
  const cells: string[] = [];
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (qr.modules.get(x, y)) cells.push(`M${x + margin} ${y + margin}h1v1h-1z`);
  const dim = size + 2 * margin;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${dim} ${dim}" width="${dim * scale}" height="${dim * scale}" shape-rendering="crispEdges"><rect width="${dim}" height="${dim}" fill="#fff"/><path fill="#000" d="${cells.join('')}"/></svg>`;
}

/** As an <img> source: CSP allows data: images, and an image cannot run script. */
export function qrDataUri(text: string): string {
  return 'data:image/svg+xml;base64,' + Buffer.from(qrSvg(text)).toString('base64');
}
