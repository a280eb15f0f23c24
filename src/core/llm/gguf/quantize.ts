import { FerryError } from '../../errors.ts';
import { f32ToF16Bits } from './f16.ts';

/**
 * ggml's block quantizations that phones and laptops run (Q8_0, Q4_0, Q4_K), written the way llama.cpp lays them
 * out, so generated models can be quantized like real ones. The encoders are the simple reference ones (Q8_0 and
 * Q4_0 as ggml's quantize_row_*_ref; Q4_K with each sub-block's own range rather than ggml's iterative search):
 * any bytes in a valid layout are a valid model, and the same input always gives the same bytes.
 */

export type QuantType = 'q8_0' | 'q4_0' | 'q4_k';

export const QUANT_TYPES: Readonly<Record<QuantType, { readonly ggmlType: number; readonly blockSize: number; readonly typeSize: number }>> = {
  q8_0: { ggmlType: 8, blockSize: 32, typeSize: 34 },
  q4_0: { ggmlType: 2, blockSize: 32, typeSize: 18 },
  q4_k: { ggmlType: 12, blockSize: 256, typeSize: 144 },
};

/** `values` (a whole number of blocks) in `type`'s block layout. */
export function quantize(type: QuantType, values: Float32Array): Uint8Array<ArrayBuffer> {
  const { blockSize, typeSize } = QUANT_TYPES[type];
  if (values.length % blockSize !== 0) throw new FerryError('gguf/bad-tensor', `${type} quantizes whole blocks of ${blockSize} values; got ${values.length}.`);
  const out = new Uint8Array((values.length / blockSize) * typeSize);
  const view = new DataView(out.buffer);
  const encode = type === 'q8_0' ? blockQ8_0 : type === 'q4_0' ? blockQ4_0 : blockQ4_K;
  for (let b = 0; b * blockSize < values.length; b++) encode(values.subarray(b * blockSize, (b + 1) * blockSize), view, b * typeSize);
  return out;
}

/** The values that `type`'s bytes stand for (ggml's dequantize_row_*). */
export function dequantize(type: QuantType, bytes: Uint8Array): Float32Array {
  const { blockSize, typeSize } = QUANT_TYPES[type];
  const out = new Float32Array((bytes.length / typeSize) * blockSize);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decode = type === 'q8_0' ? unblockQ8_0 : type === 'q4_0' ? unblockQ4_0 : unblockQ4_K;
  for (let b = 0; b * blockSize < out.length; b++) decode(view, b * typeSize, out.subarray(b * blockSize, (b + 1) * blockSize));
  return out;
}

/** C's roundf: halves away from zero. */
function roundf(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

function f16(view: DataView, at: number, value: number): void {
  view.setUint16(at, f32ToF16Bits(value), true);
}

function readF16(view: DataView, at: number): number {
  const h = view.getUint16(at, true);
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const magnitude = exp === 0 ? mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : Infinity) : (1 + mant / 1024) * 2 ** (exp - 15);
  return h & 0x8000 ? -magnitude : magnitude;
}

/** block_q8_0: f16 d, 32 × int8; x = d·q. */
function blockQ8_0(x: Float32Array, view: DataView, at: number): void {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const d = amax / 127;
  const id = d ? 1 / d : 0;
  f16(view, at, d);
  for (let j = 0; j < 32; j++) view.setInt8(at + 2 + j, roundf(x[j]! * id));
}

function unblockQ8_0(view: DataView, at: number, y: Float32Array): void {
  const d = readF16(view, at);
  for (let j = 0; j < 32; j++) y[j] = d * view.getInt8(at + 2 + j);
}

/** block_q4_0: f16 d, 16 bytes of nibbles (value j low, value j+16 high); x = d·(q − 8). */
function blockQ4_0(x: Float32Array, view: DataView, at: number): void {
  let amax = 0;
  let max = 0;
  for (const v of x) {
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = max / -8;
  const id = d ? 1 / d : 0;
  f16(view, at, d);
  const nibble = (v: number) => Math.min(15, Math.trunc(v * id + 8.5));
  for (let j = 0; j < 16; j++) view.setUint8(at + 2 + j, nibble(x[j]!) | (nibble(x[j + 16]!) << 4));
}

function unblockQ4_0(view: DataView, at: number, y: Float32Array): void {
  const d = readF16(view, at);
  for (let j = 0; j < 16; j++) {
    const q = view.getUint8(at + 2 + j);
    y[j] = d * ((q & 0xf) - 8);
    y[j + 16] = d * ((q >> 4) - 8);
  }
}

/**
 * block_q4_K: f16 d, f16 dmin, 12 bytes holding eight 6-bit scales and mins, 128 bytes of nibbles. Sub-block s
 * (32 values) is x = d·sc_s·q − dmin·m_s; the nibbles of sub-blocks 2k and 2k+1 share 32 bytes (low, high).
 */
function blockQ4_K(x: Float32Array, view: DataView, at: number): void {
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let s = 0; s < 8; s++) {
    let lo = 0;
    let hi = -Infinity;
    for (let j = 0; j < 32; j++) {
      lo = Math.min(lo, x[s * 32 + j]!);
      hi = Math.max(hi, x[s * 32 + j]!);
    }
    scales[s] = (hi - lo) / 15;
    mins[s] = -lo;
  }
  const d = Math.max(...scales) / 63;
  const dmin = Math.max(...mins) / 63;
  const sc = Array.from(scales, (v) => (d ? Math.min(63, roundf(v / d)) : 0));
  const m = Array.from(mins, (v) => (dmin ? Math.min(63, roundf(v / dmin)) : 0));
  f16(view, at, d);
  f16(view, at + 2, dmin);
  // The values the bytes will really hold, so the nibbles are chosen against them.
  const dq = readF16(view, at);
  const dminq = readF16(view, at + 2);
  for (let j = 0; j < 4; j++) {
    view.setUint8(at + 4 + j, sc[j]! | ((sc[j + 4]! >> 4) << 6));
    view.setUint8(at + 8 + j, m[j]! | ((m[j + 4]! >> 4) << 6));
    view.setUint8(at + 12 + j, (sc[j + 4]! & 0xf) | ((m[j + 4]! & 0xf) << 4));
  }
  for (let s = 0; s < 8; s++) {
    const step = dq * sc[s]!;
    const offset = dminq * m[s]!;
    for (let j = 0; j < 32; j++) {
      const q = step ? Math.max(0, Math.min(15, roundf((x[s * 32 + j]! + offset) / step))) : 0;
      const byte = at + 16 + (s >> 1) * 32 + j;
      view.setUint8(byte, s & 1 ? view.getUint8(byte) | (q << 4) : q);
    }
  }
}

/** ggml's get_scale_min_k4. */
function scaleMin(view: DataView, at: number, s: number): [number, number] {
  const q = (i: number) => view.getUint8(at + 4 + i);
  if (s < 4) return [q(s) & 63, q(s + 4) & 63];
  return [(q(s + 4) & 0xf) | ((q(s - 4) >> 6) << 4), (q(s + 4) >> 4) | ((q(s) >> 6) << 4)];
}

function unblockQ4_K(view: DataView, at: number, y: Float32Array): void {
  const d = readF16(view, at);
  const dmin = readF16(view, at + 2);
  for (let s = 0; s < 8; s++) {
    const [sc, m] = scaleMin(view, at, s);
    for (let j = 0; j < 32; j++) {
      const byte = view.getUint8(at + 16 + (s >> 1) * 32 + j);
      y[s * 32 + j] = d * sc * (s & 1 ? byte >> 4 : byte & 0xf) - dmin * m;
    }
  }
}
