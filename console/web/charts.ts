/** Charts as inline SVG rendered on the server: no chart library, no script, printable. */
import { html, type Html } from './html.js';

export function barChart(data: { label: string; n: number }[], opts: { title: string; width?: number; height?: number; labelEvery?: number }): Html {
  const w = opts.width ?? 720;
  const h = opts.height ?? 200;
  const padL = 40;
  const padB = 28;
  const padT = 10;
  const max = Math.max(1, ...data.map((d) => d.n));
  const n = Math.max(1, data.length);
  const bw = (w - padL - 10) / n;
  const every = opts.labelEvery ?? Math.max(1, Math.ceil(n / 10));
  const y = (v: number) => padT + (h - padT - padB) * (1 - v / max);
  const bars = data.map((d, i) => {
    const x = padL + i * bw;
    const top = y(d.n);
    return html`<rect class="bar" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${(h - padB - top).toFixed(1)}"><title>${d.label}: ${d.n}</title></rect>${
      i % every === 0 ? html`<text class="axis" x="${(x + bw / 2).toFixed(1)}" y="${h - padB + 14}" text-anchor="middle">${d.label}</text>` : ''
    }`;
  });
  const ticks = [0, Math.round(max / 2), max].map(
    (v) => html`<line class="grid" x1="${padL}" x2="${w - 5}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="axis" x="${padL - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`,
  );
  return html`<svg class="chart" role="img" aria-label="${opts.title}" viewBox="0 0 ${w} ${h}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>${opts.title}</title>${ticks}${bars}</svg>`;
}

/** Horizontal bars for "top N" lists. */
export function hbarChart(data: { label: string; n: number }[], opts: { title: string; width?: number }): Html {
  const w = opts.width ?? 480;
  const row = 22;
  const h = Math.max(row, data.length * row) + 4;
  const labelW = 170;
  const max = Math.max(1, ...data.map((d) => d.n));
  const bars = data.map((d, i) => {
    const bw = ((w - labelW - 50) * d.n) / max;
    const label = d.label.length > 24 ? d.label.slice(0, 23) + '…' : d.label;
    return html`<text class="axis" x="${labelW - 6}" y="${i * row + 15}" text-anchor="end">${label}</text><rect class="bar" x="${labelW}" y="${i * row + 4}" width="${Math.max(1, bw).toFixed(1)}" height="${row - 8}"><title>${d.label}: ${d.n}</title></rect><text class="axis" x="${(labelW + bw + 4).toFixed(1)}" y="${i * row + 15}">${d.n}</text>`;
  });
  return html`<svg class="chart" role="img" aria-label="${opts.title}" viewBox="0 0 ${w} ${h}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>${opts.title}</title>${bars}</svg>`;
}
