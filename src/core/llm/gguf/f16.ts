const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * IEEE 754 binary16 bits of `value`, rounded to nearest, ties to even (as numpy and ggml do).
 * Hand-written because Math.f16round and Float16Array are not on Node 20.
 */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf stays Inf; NaN stays a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    // Subnormal: shift the mantissa (with its implicit 1) so that one unit is 2^-24.
    const full = mant | 0x800000;
    const shift = 14 - e;
    return sign | ((full >>> shift) + roundBit(full, shift));
  }
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  return sign | (((e << 10) | (mant >>> 13)) + roundBit(mant, 13));
}

/** 1 when the bits dropped by `>>> shift` round the kept value up (nearest, ties to even). */
function roundBit(value: number, shift: number): number {
  const half = 2 ** (shift - 1);
  const rest = value % 2 ** shift;
  const kept = Math.floor(value / 2 ** shift);
  return rest > half || (rest === half && kept % 2 === 1) ? 1 : 0;
}
