/**
 * CSV for Excel: UTF-8 with a BOM (so Japanese opens correctly), CRLF, every field quoted, and
 * cells that Excel would treat as a formula (= + - @, tab, CR) prefixed with ' — the strings come
 * from agents and must not become formulas on an administrator's PC (CSV injection).
 */
export const BOM = '\uFEFF';

export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  s = s.toWellFormed();
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return '"' + s.replace(/"/g, '""') + '"';
}

export function csvLine(cells: unknown[]): string {
  return cells.map(csvCell).join(',') + '\r\n';
}
