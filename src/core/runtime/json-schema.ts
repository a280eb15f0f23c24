/**
 * A small JSON Schema check for tool arguments: the subset tools describe themselves with (type, properties,
 * required, additionalProperties, items, enum, const, oneOf/anyOf/allOf, string/number/array bounds). Its job is
 * to tell the model what is wrong with a call in words it can act on, before the tool ever sees the arguments.
 * Keywords outside the subset are ignored (the tool validates again itself).
 */
export type JsonSchema = Record<string, unknown>;

/** Nesting deeper than this in a schema or a value is refused rather than recursed into. */
const MAX_DEPTH = 32;

/** Returns the problems found (empty when `value` matches); each names the path, e.g. `arguments.title`. */
export function checkJsonSchema(schema: unknown, value: unknown, path = 'arguments'): string[] {
  return check(schema, value, path, 0);
}

function check(schema: unknown, value: unknown, path: string, depth: number): string[] {
  if (depth > MAX_DEPTH) return [`${path}: nested too deeply`];
  if (schema === true || schema === undefined) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  if (!isRecord(schema)) return [];
  const problems: string[] = [];
  if ('const' in schema && !deepEqual(schema.const, value)) problems.push(`${path}: must be ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => deepEqual(e, value))) {
    problems.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  }
  const types = typeof schema.type === 'string' ? [schema.type] : Array.isArray(schema.type) ? schema.type.filter((t): t is string => typeof t === 'string') : [];
  if (types.length > 0 && !types.some((t) => hasType(value, t))) {
    problems.push(`${path}: must be ${types.map(article).join(' or ')}, got ${describe(value)}`);
    return problems;
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) problems.push(`${path}: must be at least ${schema.minLength} characters`);
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) problems.push(`${path}: must be at most ${schema.maxLength} characters`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) problems.push(`${path}: must be ≥ ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) problems.push(`${path}: must be ≤ ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) problems.push(`${path}: needs at least ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) problems.push(`${path}: allows at most ${schema.maxItems} items`);
    if (schema.items !== undefined) value.forEach((item, i) => problems.push(...check(schema.items, item, `${path}[${i}]`, depth + 1)));
  }
  if (isRecord(value)) {
    const properties = isRecord(schema.properties) ? schema.properties : {};
    if (Array.isArray(schema.required)) {
      for (const key of schema.required) if (typeof key === 'string' && !Object.hasOwn(value, key)) problems.push(`${path}.${key}: is required`);
    }
    for (const [key, item] of Object.entries(value)) {
      if (Object.hasOwn(properties, key)) problems.push(...check(properties[key], item, `${path}.${key}`, depth + 1));
      else if (schema.additionalProperties === false) problems.push(`${path}.${key}: is not an allowed property (allowed: ${Object.keys(properties).join(', ') || 'none'})`);
      else if (isRecord(schema.additionalProperties)) problems.push(...check(schema.additionalProperties, item, `${path}.${key}`, depth + 1));
    }
  }
  if (Array.isArray(schema.allOf)) for (const sub of schema.allOf) problems.push(...check(sub, value, path, depth + 1));
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    const options = schema[keyword];
    if (!Array.isArray(options) || options.length === 0) continue;
    const results = options.map((sub) => check(sub, value, path, depth + 1));
    const matching = results.filter((r) => r.length === 0).length;
    if (keyword === 'oneOf' && matching > 1) problems.push(`${path}: matches more than one of the allowed forms`);
    if (matching === 0) {
      // The closest alternative's problems are the most useful hint to a model.
      const closest = results.reduce((best, r) => (r.length < best.length ? r : best));
      problems.push(`${path}: matches none of the allowed forms; closest: ${closest.join('; ')}`);
    }
  }
  return problems;
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object': return isRecord(value);
    case 'array': return Array.isArray(value);
    case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number' && Number.isFinite(value);
    case 'integer': return Number.isInteger(value);
    case 'boolean': return typeof value === 'boolean';
    case 'null': return value === null;
    default: return true;
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (Number.isInteger(value)) return 'an integer';
  return article(typeof value);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}
