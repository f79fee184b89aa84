/**
 * The smallest strict XML reader PSKC (RFC 6030) needs — no XML parser is installed in
 * node_modules and none may be added. Elements, attributes, text, comments, CDATA and the XML
 * declaration, with namespaces resolved. Refused: DOCTYPE (so no entity can be defined or
 * expanded — billion laughs, external entities), processing instructions, any entity other than
 * the five predefined ones and character references, mismatched tags, more than one root.
 * Bounded: input size, nesting depth, element count.
 */

export interface XmlElement {
  ns: string; // namespace URI ('' when none)
  name: string; // local name
  attrs: Map<string, string>; // unprefixed attributes by local name (PSKC puts none in a namespace that matters)
  children: XmlElement[];
  text: string;
}

export class XmlError extends Error {}

export const XML_LIMITS = { maxBytes: 16 * 1024 * 1024, maxDepth: 64, maxElements: 500_000 } as const;

const NAME = /^[A-Za-z_][A-Za-z0-9._-]*(:[A-Za-z_][A-Za-z0-9._-]*)?$/;

function decodeEntities(s: string, at: number): string {
  return s.replace(/&([^;&]{0,12});?/g, (whole, body: string) => {
    if (!whole.endsWith(';')) throw new XmlError(`XML: '&' の後に実体参照がありません / bare '&' near offset ${at}`);
    switch (body) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
    }
    const m = /^#(x[0-9A-Fa-f]{1,6}|[0-9]{1,7})$/.exec(body);
    if (m) {
      const cp = m[1]!.startsWith('x') ? parseInt(m[1]!.slice(1), 16) : parseInt(m[1]!, 10);
      if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new XmlError(`XML: 不正な文字参照 / invalid character reference near offset ${at}`);
      return String.fromCodePoint(cp);
    }
    throw new XmlError(`XML: 未対応の実体参照 &${body.slice(0, 12)}; / entity not allowed near offset ${at}`);
  });
}

interface Open {
  el: XmlElement;
  qname: string;
  scope: Map<string, string>;
}

export function parseXml(input: string): XmlElement {
  if (input.length > XML_LIMITS.maxBytes) throw new XmlError('XML: ファイルが大きすぎます / file too large');
  const src = input.replace(/^\uFEFF/, '');
  let i = 0;
  let root: XmlElement | null = null;
  let count = 0;
  const stack: Open[] = [];
  const resolve = (prefix: string, scope: Map<string, string>, at: number): string => {
    const ns = scope.get(prefix);
    if (ns === undefined) {
      if (prefix === '') return '';
      throw new XmlError(`XML: 未定義の名前空間接頭辞 ${prefix} / undeclared namespace prefix near offset ${at}`);
    }
    return ns;
  };
  // The loop consumes at least one character per turn, so it ends within src.length turns.
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > i) {
      const raw = src.slice(i, textEnd);
      if (stack.length === 0) {
        if (raw.trim() !== '') throw new XmlError(`XML: 要素の外に文字があります / text outside the root element at offset ${i}`);
      } else stack[stack.length - 1]!.el.text += decodeEntities(raw, i);
      i = textEnd;
      continue;
    }
    if (src.startsWith('<!--', i)) {
      const end = src.indexOf('-->', i + 4);
      if (end < 0) throw new XmlError('XML: コメントが閉じていません / unterminated comment');
      i = end + 3;
      continue;
    }
    if (src.startsWith('<![CDATA[', i)) {
      const end = src.indexOf(']]>', i + 9);
      if (end < 0 || stack.length === 0) throw new XmlError('XML: CDATA が不正です / bad CDATA section');
      stack[stack.length - 1]!.el.text += src.slice(i + 9, end);
      i = end + 3;
      continue;
    }
    if (src.startsWith('<!', i)) throw new XmlError('XML: DOCTYPE・実体宣言は受け付けません / DOCTYPE and entity declarations are refused');
    if (src.startsWith('<?', i)) {
      const end = src.indexOf('?>', i + 2);
      if (end < 0) throw new XmlError('XML: 処理命令が閉じていません / unterminated processing instruction');
      // Only the XML declaration, only first in the file.
      if (i !== 0 || !/^<\?xml\s/.test(src.slice(i, end + 2))) throw new XmlError('XML: 処理命令は受け付けません / processing instructions are refused');
      i = end + 2;
      continue;
    }
    if (src.startsWith('</', i)) {
      const end = src.indexOf('>', i);
      if (end < 0) throw new XmlError('XML: 終了タグが閉じていません / unterminated end tag');
      const qname = src.slice(i + 2, end).trim();
      const top = stack.pop();
      if (!top || top.qname !== qname) throw new XmlError(`XML: 終了タグ </${qname.slice(0, 40)}> が対応しません / mismatched end tag at offset ${i}`);
      i = end + 1;
      continue;
    }
    // Start tag: find its end outside quoted attribute values.
    let j = i + 1;
    let quote = '';
    for (; j < src.length; j++) {
      const c = src[j]!;
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '>' || c === '<') break;
    }
    if (j >= src.length || src[j] !== '>') throw new XmlError(`XML: 開始タグが閉じていません / unterminated start tag at offset ${i}`);
    let body = src.slice(i + 1, j);
    const selfClose = body.endsWith('/');
    if (selfClose) body = body.slice(0, -1);
    const m = /^([^\s/>]+)/.exec(body);
    if (!m || !NAME.test(m[1]!)) throw new XmlError(`XML: 要素名が不正です / bad element name at offset ${i}`);
    const qname = m[1]!;
    const rawAttrs = new Map<string, string>();
    const attrRe = /\s+([^\s=]+)\s*=\s*("([^"]*)"|'([^']*)')/y; // sticky: each attribute right after the last
    let pos = qname.length;
    for (let k = 0; k < 10_000; k++) {
      attrRe.lastIndex = pos;
      const a = attrRe.exec(body);
      if (!a) break;
      if (!NAME.test(a[1]!) || rawAttrs.has(a[1]!)) throw new XmlError(`XML: 属性が不正または重複しています / bad or repeated attribute at offset ${i}`);
      const v = a[3] ?? a[4] ?? '';
      if (v.includes('<')) throw new XmlError(`XML: 属性値に '<' があります / '<' in attribute value at offset ${i}`);
      rawAttrs.set(a[1]!, decodeEntities(v, i));
      pos = attrRe.lastIndex;
    }
    if (body.slice(pos).trim() !== '') throw new XmlError(`XML: 開始タグが不正です / malformed start tag at offset ${i}`);
    const parentScope = stack.length ? stack[stack.length - 1]!.scope : new Map<string, string>([['xml', 'http://www.w3.org/XML/1998/namespace']]);
    let scope = parentScope;
    for (const [k, v] of rawAttrs) {
      if (k === 'xmlns' || k.startsWith('xmlns:')) {
        if (scope === parentScope) scope = new Map(parentScope);
        scope.set(k === 'xmlns' ? '' : k.slice(6), v);
      }
    }
    const [prefix, local] = qname.includes(':') ? (qname.split(':') as [string, string]) : ['', qname];
    const attrs = new Map<string, string>();
    for (const [k, v] of rawAttrs) if (!k.includes(':') && k !== 'xmlns') attrs.set(k, v);
    const el: XmlElement = { ns: resolve(prefix, scope, i), name: local, attrs, children: [], text: '' };
    if (++count > XML_LIMITS.maxElements) throw new XmlError('XML: 要素が多すぎます / too many elements');
    if (stack.length === 0) {
      if (root) throw new XmlError('XML: ルート要素が複数あります / more than one root element');
      root = el;
    } else stack[stack.length - 1]!.el.children.push(el);
    if (!selfClose) {
      if (stack.length >= XML_LIMITS.maxDepth) throw new XmlError('XML: 入れ子が深すぎます / nested too deeply');
      stack.push({ el, qname, scope });
    }
    i = j + 1;
  }
  if (stack.length) throw new XmlError(`XML: <${stack[stack.length - 1]!.qname}> が閉じていません / unclosed element`);
  if (!root) throw new XmlError('XML: 要素がありません / no root element');
  return root;
}

/** Children in namespace `ns` named `name`. */
export function kids(el: XmlElement | undefined, ns: string, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.ns === ns && c.name === name) : [];
}

/** The only such child; two are an error (an ambiguous document is not guessed at). */
export function kid(el: XmlElement | undefined, ns: string, name: string): XmlElement | undefined {
  const k = kids(el, ns, name);
  if (k.length > 1) throw new XmlError(`XML: <${name}> が複数あります / more than one <${name}>`);
  return k[0];
}
