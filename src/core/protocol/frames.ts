/**
 * Many objects in one HTTP body, for batch upload and download: one round trip and one store commit instead of
 * one per object. Each frame is `id (32 raw bytes) | length (u32 BE) | bytes`. Decoding checks every length
 * against the limits before it slices anything.
 */
import { FerryError } from '../errors.ts';
import { fromHex, toHex } from '../store/index.ts';

export const FRAMES_CONTENT_TYPE = 'application/vnd.ferry.objects';
const FRAME_HEADER = 32 + 4;

export interface Framed {
  readonly id: string;
  readonly bytes: Uint8Array;
}

export const framedSize = (objects: readonly Framed[]): number => objects.reduce((n, o) => n + FRAME_HEADER + o.bytes.length, 0);

export function encodeFrames(objects: readonly Framed[]): Uint8Array {
  const out = new Uint8Array(framedSize(objects));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const o of objects) {
    out.set(fromHex(o.id), at);
    view.setUint32(at + 32, o.bytes.length);
    out.set(o.bytes, at + FRAME_HEADER);
    at += FRAME_HEADER + o.bytes.length;
  }
  return out;
}

/** Splits a framed body; 'protocol/bad-frames' on any truncation, oversized frame, or too many frames. */
export function decodeFrames(body: Uint8Array, limits: { maxObjectBytes: number; maxFrames: number }): Framed[] {
  const out: Framed[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (at < body.length) {
    if (out.length >= limits.maxFrames) throw bad(`more than ${limits.maxFrames} objects`);
    if (at + FRAME_HEADER > body.length) throw bad(`a frame header is cut off at byte ${at}`);
    const length = view.getUint32(at + 32);
    if (length > limits.maxObjectBytes) throw new FerryError('relay/too-large', `An object in the batch is ${length} bytes; the limit is ${limits.maxObjectBytes}.`);
    if (at + FRAME_HEADER + length > body.length) throw bad(`the object at byte ${at} claims ${length} bytes past the end`);
    out.push({ id: toHex(body.subarray(at, at + 32)), bytes: body.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length) });
    at += FRAME_HEADER + length;
  }
  return out;
}

const bad = (why: string): FerryError => new FerryError('protocol/bad-frames', `The object batch is malformed: ${why}.`);
