/** A readable, bounded rendering of any value (like Node's util.inspect, much smaller); it never runs user getters. */

const MAX_ITEMS = 100;
const MAX_KEYS = 50;
const MAX_DEPTH = 4;

export function inspect(value: unknown, depth = 0, seen: object[] = []): string {
  switch (typeof value) {
    case 'string': return depth === 0 ? value : JSON.stringify(value);
    case 'number': return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint': return `${value}n`;
    case 'boolean': case 'undefined': return String(value);
    case 'symbol': return value.toString();
    case 'function': return `[Function ${value.name || '(anonymous)'}]`;
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.includes(obj)) return '[Circular]';
  if (obj instanceof Error) return `${obj.name}: ${obj.message}`;
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
  if (obj instanceof RegExp) return obj.toString();
  if (obj instanceof Promise) return 'Promise { <pending> } (the sandbox has no event loop: promises are not awaited)';
  if (depth >= MAX_DEPTH) return Array.isArray(obj) ? '[Array]' : '[Object]';
  const inner = [...seen, obj];
  const show = (v: unknown) => inspect(v, depth + 1, inner);
  if (Array.isArray(obj)) {
    const items = obj.slice(0, MAX_ITEMS).map(show);
    if (obj.length > MAX_ITEMS) items.push(`… ${obj.length - MAX_ITEMS} more`);
    return `[${items.join(', ')}]`;
  }
  if (obj instanceof Map) {
    const items = [...obj].slice(0, MAX_ITEMS).map(([k, v]) => `${show(k)} => ${show(v)}`);
    return `Map(${obj.size}) {${items.join(', ')}${obj.size > MAX_ITEMS ? ', …' : ''}}`;
  }
  if (obj instanceof Set) {
    const items = [...obj].slice(0, MAX_ITEMS).map(show);
    return `Set(${obj.size}) {${items.join(', ')}${obj.size > MAX_ITEMS ? ', …' : ''}}`;
  }
  if (ArrayBuffer.isView(obj)) return `${obj.constructor.name}(${(obj as Uint8Array).length ?? obj.byteLength}) [${Array.from((obj as Uint8Array).slice(0, MAX_ITEMS)).join(', ')}]`;
  const keys = Object.keys(obj);
  const parts = keys.slice(0, MAX_KEYS).map((k) => {
    const d = Object.getOwnPropertyDescriptor(obj, k);
    const name = /^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k);
    return `${name}: ${d && 'value' in d ? show(d.value) : '[Getter]'}`;
  });
  if (keys.length > MAX_KEYS) parts.push(`… ${keys.length - MAX_KEYS} more`);
  const ctor = (Object.getPrototypeOf(obj) as { constructor?: { name?: string } } | null)?.constructor?.name;
  const prefix = ctor && ctor !== 'Object' ? `${ctor} ` : '';
  return parts.length === 0 ? `${prefix}{}` : `${prefix}{ ${parts.join(', ')} }`;
}
