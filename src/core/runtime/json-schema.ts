/**
 * Tool arguments checked against the tool's JSON Schema (every keyword of drafts 4 to 2020-12) by
 * @cfworker/json-schema: isomorphic, no code generation (so it runs under a strict CSP and in workers), and its
 * errors name the instance location. The job here is to tell the model what is wrong with a call in words it can
 * act on, before the tool ever sees the arguments.
 */
import { Validator, type OutputUnit, type Schema } from '@cfworker/json-schema';

export type JsonSchema = Record<string, unknown>;

/** Nesting deeper than this in a value is refused rather than walked. */
const MAX_DEPTH = 32;

/** Keywords whose errors only say that a child failed; the child's own error says what is wrong. */
const SUMMARIES = new Set(['properties', 'items', 'prefixItems', 'additionalItems', 'false', 'allOf', '$ref']);

const validators = new Map<string, Validator>();

/** Returns the problems found (empty when `value` matches); each names the path, e.g. `arguments.title`. */
export function checkJsonSchema(schema: unknown, value: unknown, path = 'arguments'): string[] {
  if (depthOf(value, 0) > MAX_DEPTH) return [`${path}: nested too deeply (more than ${MAX_DEPTH} levels)`];
  const { errors } = validatorFor(schema).validate(value);
  const problems = errors.filter((e) => !SUMMARIES.has(e.keyword)).map((e) => `${path}${pathOf(e)}: ${e.error}`);
  return [...new Set(problems)];
}

function validatorFor(schema: unknown): Validator {
  const key = JSON.stringify(schema ?? true);
  let validator = validators.get(key);
  if (!validator) {
    validator = new Validator(typeof schema === 'boolean' ? schema : ((schema ?? true) as Schema | boolean), '2020-12', false);
    // Tool schemas are few and fixed; the bound only keeps a stream of ad-hoc schemas (the /v1 API) from piling up.
    if (validators.size >= 256) validators.delete(validators.keys().next().value!);
    validators.set(key, validator);
  }
  return validator;
}

/** `#/tags/1` → `.tags[1]`. */
function pathOf(error: OutputUnit): string {
  return error.instanceLocation
    .replace(/^#/, '')
    .split('/')
    .slice(1)
    .map((part) => decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join('');
}

function depthOf(value: unknown, depth: number): number {
  if (depth > MAX_DEPTH || typeof value !== 'object' || value === null) return depth;
  let deepest = depth;
  for (const item of Object.values(value)) deepest = Math.max(deepest, depthOf(item, depth + 1));
  return deepest;
}
