/**
 * Bounds on MessagePack from outside, checked by a scan that allocates nothing, before any decoder runs. A decoder
 * pre-sizes every array to the length its header claims and recurses as deep as the input nests, so a few KB of
 * hostile headers would claim gigabytes before any validation could refuse them. The scan walks the bytes once and
 * refuses, with the limit it hit:
 * - a container claiming more items than bytes remain (every item takes at least one byte),
 * - nesting deeper than `maxDepth`,
 * - more than `maxValues` values in all, or more than `maxObjects` values the decoder allocates an object for
 *   (arrays, maps, strings, byte strings), which bounds the decoded value's memory whatever the payload's size,
 * - extension types (Ferry writes none), the reserved byte 0xc1, truncation, and bytes after the one value.
 */
import { FerryError, type ErrorCode } from '../errors.ts';

export interface MsgpackBounds {
  maxDepth: number;
  maxValues: number;
  maxObjects: number;
}

/**
 * Ferry's objects nest five levels at most and stay far below these counts (a checkpoint holds at most 10,000 events;
 * a generation at most 2^20 token ids); at these counts a decoded value stays within a few tens of MB.
 */
export const MSGPACK_BOUNDS: MsgpackBounds = { maxDepth: 32, maxValues: 1 << 22, maxObjects: 1 << 18 };

/** Throws `code` (details.limit names the bound) unless `bytes` is exactly one MessagePack value within `bounds`. */
export function checkMsgpackBounds(bytes: Uint8Array, code: ErrorCode, what: string, bounds: MsgpackBounds = MSGPACK_BOUNDS): void {
  const fail = (limit: string, why: string): never => {
    throw new FerryError(code, `${what} ${why}; the data is damaged or hostile, and was refused before decoding.`, { details: { limit } });
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  /** Items still expected by each open container, innermost last (at most maxDepth entries). */
  const open: number[] = [];
  let pos = 0;
  let values = 0;
  let objects = 0;
  const need = (n: number): void => {
    if (pos + n > end) fail('truncated', 'ends in the middle of a value');
  };
  const len = (size: 1 | 2 | 4): number => {
    need(size);
    const n = size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return n;
  };
  const skip = (n: number): void => {
    need(n);
    pos += n;
  };
  const container = (items: number): void => {
    if (items > end - pos) fail('length', `claims a container of ${items} items with ${end - pos} bytes left`);
    if (open.length >= bounds.maxDepth) fail('depth', `nests deeper than ${bounds.maxDepth} levels`);
    if (items > 0) open.push(items);
  };

  do {
    if (++values > bounds.maxValues) fail('values', `holds more than ${bounds.maxValues} values`);
    // This value fills one slot of the innermost open container (closed below once its last item is done).
    if (open.length > 0) open[open.length - 1]! -= 1;
    need(1);
    const b = bytes[pos++]!;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, bool: the byte is the value.
    } else if (b <= 0xbf) {
      objects++;
      if (b <= 0x8f) container(2 * (b & 0x0f));
      else if (b <= 0x9f) container(b & 0x0f);
      else skip(b & 0x1f);
    } else {
      switch (b) {
        case 0xcc: case 0xd0: skip(1); break;
        case 0xcd: case 0xd1: skip(2); break;
        case 0xca: case 0xce: case 0xd2: skip(4); break;
        case 0xcb: case 0xcf: case 0xd3: skip(8); break;
        case 0xc4: case 0xd9: objects++; skip(len(1)); break;
        case 0xc5: case 0xda: objects++; skip(len(2)); break;
        case 0xc6: case 0xdb: objects++; skip(len(4)); break;
        case 0xdc: objects++; container(len(2)); break;
        case 0xdd: objects++; container(len(4)); break;
        case 0xde: objects++; container(2 * len(2)); break;
        case 0xdf: objects++; container(2 * len(4)); break;
        default: fail('type', b === 0xc1 ? 'holds the reserved byte 0xc1' : 'holds an extension type, which Ferry never writes');
      }
    }
    if (objects > bounds.maxObjects) fail('objects', `holds more than ${bounds.maxObjects} arrays, maps and strings`);
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
  } while (open.length > 0);
  if (pos !== end) fail('trailing', `has ${end - pos} bytes after its value`);
}
