/**
 * A wire message is declared once as a TypeBox schema; this turns it into the runtime check
 * (compiled once, on first use) with errors that name the failing path the way the policy
 * validators do: `body.events[3].seq: must be <= 9007199254740991`.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

export interface WireCheck<T> {
  /** True when `x` is a well-formed T (no errors computed: the hot path). */
  check(x: unknown): x is T;
  /** What is wrong, each naming its path under `where` (empty = fine); at most `max` messages. */
  errors(x: unknown, where?: string, max?: number): string[];
}

interface TbError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** JSON pointer "/a/0/b" → ".a[0].b" (keys cut to 64 characters: they may be attacker-chosen). */
export function pointerPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d{1,9}$/.test(p) ? `[${p}]` : '.' + JSON.stringify(p.slice(0, 64)).slice(1, -1)))
    .join('');
}

/** TypeBox's errors as one line per problem, at most `max` of them. */
export function describeErrors(errors: readonly TbError[], where: string, max: number): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (line: string) => {
    if (!seen.has(line)) {
      seen.add(line);
      out.push(line);
    }
  };
  // Literal unions report one `const` error per member: say "one of" once, per path.
  const allowed = new Map<string, string[]>();
  for (const e of errors) if (e.keyword === 'const') (allowed.get(e.instancePath) ?? allowed.set(e.instancePath, []).get(e.instancePath)!).push(String(e.params.allowedValue));
  for (const e of errors) {
    if (out.length >= max) break;
    const at = where + pointerPath(e.instancePath);
    if (e.keyword === 'boolean' && e.schemaPath.endsWith('/additionalProperties')) continue; // said by the additionalProperties error
    if (e.keyword === 'additionalProperties') {
      for (const k of (e.params.additionalProperties as string[] | undefined) ?? []) add(`${at}.${JSON.stringify(k.slice(0, 64)).slice(1, -1)}: unknown member`);
      continue;
    }
    if (e.keyword === 'required') {
      for (const k of (e.params.requiredProperties as string[] | undefined) ?? []) add(`${at}.${k}: missing`);
      continue;
    }
    if (e.keyword === 'const') {
      add(`${at}: must be one of ${allowed.get(e.instancePath)!.join(', ')}`);
      continue;
    }
    if (e.keyword === 'anyOf' && allowed.has(e.instancePath)) continue;
    add(`${at}: ${e.message}`);
  }
  return out.slice(0, max);
}

/**
 * Compiles `schema` on first use, once; the check and the errors come from that one declaration.
 * Not at module load: each program meets only its side of protocol/ (the idle agent saved the
 * heap and code of the console's schemas, bench/agent-footprint).
 */
export function wireCheck<S extends TSchema>(schema: S): WireCheck<Static<S>> {
  let compiled: { Check(x: unknown): boolean; Errors(x: unknown): unknown } | undefined;
  const v = () => (compiled ??= Compile(schema));
  return {
    check: (x: unknown): x is Static<S> => v().Check(x),
    errors: (x, where = 'body', max = 20) => (v().Check(x) ? [] : describeErrors(v().Errors(x) as unknown as TbError[], where, max)),
  };
}

// ---- shared building blocks -------------------------------------------------------------------

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** A JSON-safe counter: 2^53 and beyond cannot be told apart from its neighbours. */
export const SafeCount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/** ISO 8601 UTC with milliseconds, as toISOString() writes it. */
export const ISO_MS_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$';
export const IsoTime = Type.String({ pattern: ISO_MS_PATTERN });
export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
