/** A line diff (longest common subsequence) for reviewing policy changes before they are signed. */
export type DiffLine = { op: ' ' | '+' | '-'; text: string };

export function diffLines(a: string, b: string, maxCells = 4_000_000): DiffLine[] {
  const x = a.split('\n');
  const y = b.split('\n');
  // Common prefix and suffix first: policy edits are usually small.
  let pre = 0;
  while (pre < x.length && pre < y.length && x[pre] === y[pre]) pre++;
  let suf = 0;
  while (suf < x.length - pre && suf < y.length - pre && x[x.length - 1 - suf] === y[y.length - 1 - suf]) suf++;
  const xm = x.slice(pre, x.length - suf);
  const ym = y.slice(pre, y.length - suf);
  const out: DiffLine[] = x.slice(0, pre).map((text) => ({ op: ' ', text }));
  if (xm.length * ym.length > maxCells) {
    // Too big for LCS: show the whole middle as replaced (still correct, just less precise).
    out.push(...xm.map((text) => ({ op: '-' as const, text })), ...ym.map((text) => ({ op: '+' as const, text })));
  } else {
    const n = xm.length;
    const m = ym.length;
    const L: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i]![j] = xm[i] === ym[j] ? L[i + 1]![j + 1]! + 1 : Math.max(L[i + 1]![j]!, L[i]![j + 1]!);
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (xm[i] === ym[j]) {
        out.push({ op: ' ', text: xm[i]! });
        i++;
        j++;
      } else if (L[i + 1]![j]! >= L[i]![j + 1]!) out.push({ op: '-', text: xm[i++]! });
      else out.push({ op: '+', text: ym[j++]! });
    }
    while (i < n) out.push({ op: '-', text: xm[i++]! });
    while (j < m) out.push({ op: '+', text: ym[j++]! });
  }
  out.push(...x.slice(x.length - suf).map((text) => ({ op: ' ' as const, text })));
  return out;
}

export function changed(d: DiffLine[]): boolean {
  return d.some((l) => l.op !== ' ');
}

/** Keeps `n` unchanged lines around each change; longer unchanged runs become one "…" marker. */
export function withContext(d: DiffLine[], n = 3): (DiffLine | { op: '…'; text: string })[] {
  const keep = new Array<boolean>(d.length).fill(false);
  d.forEach((l, i) => {
    if (l.op !== ' ') for (let j = Math.max(0, i - n); j <= Math.min(d.length - 1, i + n); j++) keep[j] = true;
  });
  const out: (DiffLine | { op: '…'; text: string })[] = [];
  for (let i = 0; i < d.length; i++) {
    if (keep[i]) out.push(d[i]!);
    else if (out.length === 0 || out[out.length - 1]!.op !== '…') out.push({ op: '…', text: '' });
  }
  return out;
}
