/**
 * Japanese first, English available: command-line and log messages that people read are written
 * in both languages at the call site; SEKIMORI_LANG (or LANG) starting with "en" picks English.
 */
export function lang(): 'ja' | 'en' {
  const l = process.env.SEKIMORI_LANG ?? process.env.LANG ?? '';
  return l.toLowerCase().startsWith('en') ? 'en' : 'ja';
}

export function t(ja: string, en: string): string {
  return lang() === 'en' ? en : ja;
}
