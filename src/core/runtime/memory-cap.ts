/**
 * Caps a core module's linear memories while it runs, not after: every memory the module defines gets a maximum
 * (in 64 KiB pages), so `memory.grow` past it fails inside the call — the guest's allocator sees out-of-memory —
 * instead of the host finding out after the call returned with gigabytes held. The module's bytes are checked
 * against their hash before this (load.ts); only the limits of the memory section change. Memories the module
 * imports are the ones other modules define, capped there.
 */
import { FerryError } from '../errors.ts';
import { concatBytes } from '../protocol/bytes.ts';

const MEMORY_SECTION = 5;
const WASM_PAGE = 65_536;

function readLeb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length || shift > 28) throw new FerryError('component/malformed', 'A core module ends inside a number; it is not valid WebAssembly.');
    const b = bytes[at++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, at];
  }
}

function writeLeb(value: number, out: number[]): void {
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
}

/** `module` with each memory it defines limited to at most `maxBytes` (rounded down to whole pages). */
export function capMemories(module: Uint8Array, maxBytes: number, what: string): Uint8Array {
  const maxPages = Math.floor(maxBytes / WASM_PAGE);
  if (module.length < 8) throw new FerryError('component/malformed', `${what} is not WebAssembly.`);
  const parts: Uint8Array[] = [module.subarray(0, 8)];
  let at = 8;
  let changed = false;
  while (at < module.length) {
    const start = at;
    const id = module[at++]!;
    const [size, body] = readLeb(module, at);
    const end = body + size;
    if (end > module.length) throw new FerryError('component/malformed', `${what} has a section past its end; it is not valid WebAssembly.`);
    if (id !== MEMORY_SECTION) {
      parts.push(module.subarray(start, end));
      at = end;
      continue;
    }
    const entries: number[] = [];
    let [count, p] = readLeb(module, body);
    writeLeb(count, entries);
    for (; count > 0; count--) {
      const flags = module[p++]!;
      if (flags > 1) throw new FerryError('component/unsupported', `${what} defines a shared or 64-bit memory, which Ferry cannot cap; it cannot run as a tool.`);
      let min: number;
      [min, p] = readLeb(module, p);
      let max = maxPages;
      if (flags === 1) {
        let declared: number;
        [declared, p] = readLeb(module, p);
        max = Math.min(declared, maxPages);
      }
      if (min > max) {
        throw new FerryError('component/limit-too-low', `${what} starts with ${min * WASM_PAGE} bytes of memory, more than its limit of ${maxBytes}; raise the tool's memory limit.`, { details: { min: min * WASM_PAGE, limit: maxBytes } });
      }
      entries.push(1);
      writeLeb(min, entries);
      writeLeb(max, entries);
    }
    if (p !== end) throw new FerryError('component/malformed', `${what} has a malformed memory section.`);
    const header: number[] = [MEMORY_SECTION];
    writeLeb(entries.length, header);
    parts.push(Uint8Array.from(header), Uint8Array.from(entries));
    changed = true;
    at = end;
  }
  if (!changed) return module;
  return concatBytes(...parts);
}
