import { FerryError } from '../errors.ts';

/**
 * JSON Schema → GBNF (llama.cpp's grammar format, which node-llama-cpp and wllama take as it is). The grammar's
 * language is a subset of the schema's: every text it admits parses as JSON and validates, so a constrained
 * generation cannot produce a bad value. Where a keyword cannot be expressed (pattern, format, multipleOf, not,
 * if/then/else, uniqueItems) the grammar is as loose as the rest of the schema and the validator still decides.
 * Objects get only their declared properties, required ones first, each once, in schema order; strings, arrays and
 * free-form values are bounded (`limits`) so a constrained generation always ends.
 */

export interface JsonGrammarLimits {
  /** Longest string (in characters) the grammar admits where the schema sets no smaller maxLength. */
  readonly maxString: number;
  /** Most items of an array, or members of a free-form object, where the schema sets no smaller bound. */
  readonly maxItems: number;
  /** Nesting of free-form values (`{}` or `{ "type": "object" }` without properties). */
  readonly maxDepth: number;
}

export const DEFAULT_JSON_LIMITS: JsonGrammarLimits = { maxString: 256, maxItems: 16, maxDepth: 4 };

type Schema = Record<string, unknown>;

/** Digits of an integer the grammar writes when the schema gives no bound: stays a safe integer. */
const MAX_INT_DIGITS = 15;
const MAX_INT = 10 ** MAX_INT_DIGITS - 1;

/** A grammar under construction: named rules, identical bodies shared. */
export class GbnfBuilder {
  readonly #rules = new Map<string, string>();
  readonly #byBody = new Map<string, string>();
  /** The longest text each rule admits, in characters, an escape counted as one (Infinity where a $ref recurses). */
  readonly #longest = new Map<string, number>();
  readonly #refs = new Map<string, string>();
  readonly #limits: JsonGrammarLimits;
  #root: Schema = {};

  constructor(limits: Partial<JsonGrammarLimits> = {}) {
    this.#limits = { ...DEFAULT_JSON_LIMITS, ...limits };
    // One optional space: models write compact or single-spaced JSON, and a bounded gap keeps calls bounded.
    this.rule('ws', '" "?', 1);
  }

  /** Adds `name ::= body` admitting at most `longest` characters (or returns the rule that already has this body). */
  rule(name: string, body: string, longest: number): string {
    const known = this.#byBody.get(body);
    if (known) return known;
    let unique = sanitize(name);
    for (let n = 2; this.#rules.has(unique); n++) unique = `${sanitize(name)}-${n}`;
    this.#rules.set(unique, body);
    this.#byBody.set(body, unique);
    this.#longest.set(unique, longest);
    return unique;
  }

  /** The longest text rule `name` admits, in characters. */
  longest(name: string): number {
    return this.#longest.get(name) ?? Infinity;
  }

  /** A rule for values matching `schema`; `$ref`s resolve against `root` (the document the schema came from). */
  schema(schema: unknown, name: string, root?: unknown): string {
    if (root !== undefined) this.#root = isRecord(root) ? root : {};
    return this.#value(schema, name, 0);
  }

  /** The grammar text with `root ::= body` first. */
  grammar(rootBody: string): string {
    return [`root ::= ${rootBody}`, ...[...this.#rules].map(([name, body]) => `${name} ::= ${body}`)].join('\n');
  }

  #value(schema: unknown, name: string, depth: number): string {
    if (schema === true || schema === undefined) return this.#any(name, depth);
    if (schema === false || !isRecord(schema)) throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} admits no value (or is not a schema), so no output can match it.`);
    if (typeof schema.$ref === 'string') return this.#ref(schema.$ref, depth);
    if ('const' in schema) return this.#literals(name, [schema.const]);
    if (Array.isArray(schema.enum)) {
      if (schema.enum.length === 0) throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} has an empty enum: no value can match it.`);
      return this.#literals(name, schema.enum);
    }
    const options = (Array.isArray(schema.anyOf) ? schema.anyOf : Array.isArray(schema.oneOf) ? schema.oneOf : undefined) as unknown[] | undefined;
    const { anyOf: _a, oneOf: _o, ...base } = schema;
    // The parent's keywords hold for every alternative (`{ type: object, oneOf: [{ properties… }] }`).
    if (options) return this.#union(name, options.map((option, i) => this.#value(merge(base, option), `${name}-${i}`, depth)));
    if (Array.isArray(schema.allOf)) {
      const { allOf, ...rest } = schema;
      return this.#value((allOf as unknown[]).reduce<Schema>((all, part) => merge(all, part), rest), name, depth);
    }
    const types = typeof schema.type === 'string' ? [schema.type] : Array.isArray(schema.type) ? (schema.type as string[]) : undefined;
    if (types && types.length > 1) return this.#union(name, types.map((type) => this.#value({ ...schema, type }, `${name}-${type}`, depth)));
    const type = types?.[0] ?? inferType(schema);
    switch (type) {
      case 'string': return this.#string(schema, name);
      case 'integer': return this.#integer(name, lowerBound(schema), upperBound(schema));
      case 'number': return this.#number(schema, name);
      case 'boolean': return this.rule('boolean', '"true" | "false"', 5);
      case 'null': return this.rule('null', '"null"', 4);
      case 'array': return this.#array(schema, name, depth);
      case 'object': return this.#object(schema, name, depth);
      case undefined: return this.#any(name, depth);
      default: throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} has an unknown type ${JSON.stringify(type)}.`);
    }
  }

  #literals(name: string, values: readonly unknown[]): string {
    const texts = values.map((value) => JSON.stringify(value));
    return this.rule(name, texts.map(literal).join(' | '), Math.max(...texts.map((t) => t.length)));
  }

  #union(name: string, rules: readonly string[]): string {
    return this.rule(name, rules.join(' | '), Math.max(...rules.map((r) => this.longest(r))));
  }

  #ref(ref: string, depth: number): string {
    const known = this.#refs.get(ref);
    if (known) return known;
    const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
    const target = match ? (this.#root[match[1]!] as Schema | undefined)?.[decodeURIComponent(match[2]!)] : ref === '#' ? this.#root : undefined;
    if (target === undefined) throw new FerryError('llm/bad-grammar', `The JSON schema refers to ${ref}, which it does not define (only local #/$defs/… and #/definitions/… references are followed).`);
    // Named before it is built, so a recursive definition refers to itself (and its length is unbounded).
    const name = sanitize(`ref-${match?.[2] ?? 'root'}-def`);
    this.#refs.set(ref, name);
    const body = this.#value(target, `ref-${match?.[2] ?? 'root'}`, depth);
    this.#rules.set(name, body);
    this.#longest.set(name, this.longest(body));
    return name;
  }

  #string(schema: Schema, name: string): string {
    const char = this.rule('char', '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})', 6);
    const min = Math.max(0, num(schema.minLength) ?? 0);
    const max = Math.min(num(schema.maxLength) ?? Infinity, Math.max(min, this.#limits.maxString));
    if (min > max) throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} asks for a string of at least ${min} characters and at most ${max}.`);
    // Escapes are written as several characters; an unescaped character is one (the usual case counted here).
    return this.rule('string', `"\\"" ${char}{${min},${max}} "\\""`, max + 2);
  }

  #integer(name: string, low: number | undefined, high: number | undefined): string {
    const body = integerRange(low, high);
    const widest = [low, high].map((b) => (b === undefined ? MAX_INT_DIGITS + 1 : String(Math.trunc(b)).length));
    return this.rule(name, body, Math.max(...widest, low === undefined || low < 0 ? MAX_INT_DIGITS + 1 : 0));
  }

  #number(schema: Schema, name: string): string {
    const low = lowerBound(schema);
    const high = upperBound(schema);
    // A bounded number is written as an integer in its bounds (always valid); unbounded ones may have a fraction.
    if (low !== undefined || high !== undefined) return this.#integer(name, low === undefined ? undefined : Math.ceil(low), high === undefined ? undefined : Math.floor(high));
    return this.rule('number', `"-"? ("0" | [1-9] [0-9]{0,${MAX_INT_DIGITS - 1}}) ("." [0-9]{1,8})? ([eE] [-+]? [0-9]{1,2})?`, MAX_INT_DIGITS + 14);
  }

  #array(schema: Schema, name: string, depth: number): string {
    const prefix = (Array.isArray(schema.prefixItems) ? schema.prefixItems : Array.isArray(schema.items) ? schema.items : []) as unknown[];
    if (prefix.length > 0) {
      const items = prefix.map((item, i) => this.#value(item, `${name}-${i}`, depth + 1));
      return this.rule(name, `"[" ws ${items.join(' "," ws ')} ws "]"`, 4 + items.reduce((n, item) => n + this.longest(item) + 2, 0));
    }
    const item = this.#value(Array.isArray(schema.items) ? true : schema.items, `${name}-item`, depth + 1);
    const min = Math.max(0, num(schema.minItems) ?? 0);
    const max = Math.min(num(schema.maxItems) ?? Infinity, Math.max(min, this.#limits.maxItems));
    if (min > max) throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} asks for at least ${min} items and at most ${max}.`);
    if (max === 0) return this.rule('empty-array', '"[" ws "]"', 3);
    const list = `${item} ws ("," ws ${item} ws){${Math.max(0, min - 1)},${max - 1}}`;
    return this.rule(name, min === 0 ? `"[" ws (${list})? "]"` : `"[" ws ${list} "]"`, 3 + max * (this.longest(item) + 3));
  }

  #object(schema: Schema, name: string, depth: number): string {
    const properties = isRecord(schema.properties) ? schema.properties : {};
    const names = Object.keys(properties);
    const required = new Set((Array.isArray(schema.required) ? schema.required : []).filter((k): k is string => typeof k === 'string'));
    for (const key of required) {
      if (!(key in properties)) throw new FerryError('llm/bad-grammar', `The JSON schema at ${name} requires "${key}" but does not describe it; add it to properties.`);
    }
    if (names.length === 0) {
      if (schema.additionalProperties === false) return this.rule('empty-object', '"{" ws "}"', 3);
      return this.#freeObject(name, depth, isRecord(schema.additionalProperties) ? schema.additionalProperties : true);
    }
    const member = (key: string) => {
      const value = this.#value(properties[key], `${name}-${key}`, depth + 1);
      const label = JSON.stringify(key);
      return this.rule(`${name}-${key}-kv`, `${literal(label)} ws ":" ws ${value}`, label.length + 3 + this.longest(value));
    };
    const must = names.filter((k) => required.has(k)).map(member);
    const may = names.filter((k) => !required.has(k)).map(member);
    const longest = 2 + [...must, ...may].reduce((n, m) => n + this.longest(m) + 3, 0);
    // Optional members in order, each present or not: rest(i) ::= ("," ws m_i ws)? rest(i+1).
    const rests: string[] = new Array<string>(may.length + 1).fill('');
    for (let i = may.length - 1; i >= 0; i--) {
      rests[i] = this.rule(`${name}-rest-${i}`, `("," ws ${may[i]} ws)? ${rests[i + 1]}`.trim(), may.slice(i).reduce((n, m) => n + this.longest(m) + 3, 0));
    }
    if (must.length > 0) return this.rule(name, `"{" ws ${must.join(' ws "," ws ')} ws ${rests[0]} "}"`.replace(/\s+/g, ' '), longest);
    // No required member: the first optional one present has no comma before it.
    let first = '';
    for (let i = may.length - 1; i >= 0; i--) {
      first = this.rule(`${name}-first-${i}`, [`${may[i]} ws ${rests[i + 1]}`.trim(), ...(first ? [first] : [])].join(' | '), longest);
    }
    return this.rule(name, `"{" ws (${first})? "}"`, longest);
  }

  #freeObject(name: string, depth: number, values: unknown): string {
    if (depth >= this.#limits.maxDepth) return this.rule('empty-object', '"{" ws "}"', 3);
    const key = this.#string({}, 'string');
    const value = this.#value(values, `${name}-value`, depth + 1);
    const pair = this.rule(`${name}-pair`, `${key} ws ":" ws ${value} ws`, this.longest(key) + 4 + this.longest(value));
    const max = this.#limits.maxItems;
    return this.rule(name, `"{" ws (${pair} ("," ws ${pair}){0,${max - 1}})? "}"`, 3 + max * (this.longest(pair) + 2));
  }

  #any(name: string, depth: number): string {
    const scalars = [this.#string({}, 'string'), this.#number({}, 'number'), this.rule('boolean', '"true" | "false"', 5), this.rule('null', '"null"', 4)];
    if (depth >= this.#limits.maxDepth) return this.#union('scalar', scalars);
    const array = this.#array({ items: true }, `${name}-array`, depth);
    const object = this.#freeObject(`${name}-object`, depth, true);
    return this.#union(`any-${depth}`, [...scalars, array, object]);
  }
}

/** The GBNF grammar of JSON values matching `schema`. */
export function jsonSchemaGrammar(schema: unknown, limits: Partial<JsonGrammarLimits> = {}): string {
  const builder = new GbnfBuilder(limits);
  const value = builder.schema(schema, 'value', schema);
  return builder.grammar(`ws ${value} ws`);
}

/** A GBNF string literal for `text`. */
export function literal(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * GBNF for the decimal integers from `min` to `max` (either open), as a union of digit-range sequences: e.g.
 * 1..20 → `[1-9] | "1" [0-9] | "20"`. Unbounded sides stop at 15 digits (safe integers).
 */
export function integerRange(min: number | undefined, max: number | undefined): string {
  const low = min === undefined ? -MAX_INT : Math.max(-MAX_INT, Math.ceil(min));
  const high = max === undefined ? MAX_INT : Math.min(MAX_INT, Math.floor(max));
  if (low > high) throw new FerryError('llm/bad-grammar', `The JSON schema asks for an integer from ${min} to ${max}: there is none.`);
  const parts: string[] = [];
  if (low < 0) parts.push(...positiveRange(Math.max(1, -Math.min(high, -1)), -low).map((p) => `"-" ${p}`));
  if (high >= 0) parts.push(...positiveRange(Math.max(0, low), high));
  return parts.map((p) => (parts.length > 1 && p.includes(' ') ? `(${p})` : p)).join(' | ');
}

/** Sequences for [lo, hi], lo ≥ 0, split by digit count. */
function positiveRange(lo: number, hi: number): string[] {
  const out: string[] = [];
  for (let digits = String(lo).length; digits <= String(hi).length; digits++) {
    const a = Math.max(lo, digits === 1 ? 0 : 10 ** (digits - 1));
    const b = Math.min(hi, 10 ** digits - 1);
    if (a <= b) out.push(...sameLength(String(a), String(b)));
  }
  return out;
}

/** Sequences for the decimal strings from a to b, both of the same length. */
function sameLength(a: string, b: string): string[] {
  if (a === b) return [literal(a)];
  if (a.length === 1) return [`[${a}-${b}]`];
  const rest = a.length - 1;
  const any = `[0-9]{${rest}}`;
  if (a[0] === b[0]) return sameLength(a.slice(1), b.slice(1)).map((p) => `${literal(a[0]!)} ${p}`);
  if (/^0*$/.test(a.slice(1)) && /^9*$/.test(b.slice(1))) return [`[${a[0]}-${b[0]}] ${any}`];
  const out = sameLength(a.slice(1), '9'.repeat(rest)).map((p) => `${literal(a[0]!)} ${p}`);
  const from = Number(a[0]) + 1;
  const to = Number(b[0]) - 1;
  if (from <= to) out.push(`[${from}-${to}] ${any}`);
  out.push(...sameLength('0'.repeat(rest), b.slice(1)).map((p) => `${literal(b[0]!)} ${p}`));
  return out;
}

function lowerBound(schema: Schema): number | undefined {
  const min = num(schema.minimum);
  const exclusive = schema.exclusiveMinimum;
  if (typeof exclusive === 'number') return Math.max(min ?? -Infinity, Number.isInteger(exclusive) ? exclusive + 1 : Math.ceil(exclusive));
  if (exclusive === true && min !== undefined) return Math.floor(min) + 1;
  return min;
}

function upperBound(schema: Schema): number | undefined {
  const max = num(schema.maximum);
  const exclusive = schema.exclusiveMaximum;
  if (typeof exclusive === 'number') return Math.min(max ?? Infinity, Number.isInteger(exclusive) ? exclusive - 1 : Math.floor(exclusive));
  if (exclusive === true && max !== undefined) return Math.ceil(max) - 1;
  return max;
}

function inferType(schema: Schema): string | undefined {
  if ('properties' in schema || 'required' in schema || 'additionalProperties' in schema) return 'object';
  if ('items' in schema || 'prefixItems' in schema) return 'array';
  if ('minLength' in schema || 'maxLength' in schema || 'pattern' in schema) return 'string';
  if ('minimum' in schema || 'maximum' in schema) return 'number';
  return undefined;
}

/** Two schemas that must both hold, for the cases a grammar can merge: properties, required, the rest (b wins). */
function merge(a: Schema, b: unknown): Schema {
  if (!isRecord(b)) return a;
  const properties = isRecord(a.properties) || isRecord(b.properties) ? { ...(a.properties as Schema), ...(b.properties as Schema) } : undefined;
  const required = [...new Set([...(Array.isArray(a.required) ? a.required : []), ...(Array.isArray(b.required) ? b.required : [])])];
  return { ...a, ...b, ...(properties ? { properties } : {}), ...(required.length > 0 ? { required } : {}) };
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function isRecord(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase() || 'r';
}
