/**
 * A JSON form of StateImage for tests that move an image between processes (a child node, Chromium). Pages are
 * base64; i64 globals are tagged. The product's storage of images is the session core's chunks, not this.
 */
import type { GlobalValue, StateImage } from '../../src/core/runtime/index.ts';

export interface StateImageJson {
  component: string;
  memories: { key: string; byteLength: number; pages: [number, string][] }[];
  globals: { key: string; value: number | { i64: string } }[];
}

export function imageToJson(image: StateImage): StateImageJson {
  return {
    component: image.component,
    memories: image.memories.map((m) => ({ key: m.key, byteLength: m.byteLength, pages: [...m.pages].map(([i, p]) => [i, toBase64(p)]) })),
    globals: image.globals.map((g) => ({ key: g.key, value: typeof g.value === 'bigint' ? { i64: g.value.toString() } : g.value })),
  };
}

export function imageFromJson(json: StateImageJson): StateImage {
  return {
    component: json.component,
    memories: json.memories.map((m) => ({ key: m.key, byteLength: m.byteLength, pages: new Map(m.pages.map(([i, p]) => [i, fromBase64(p)])) })),
    globals: json.globals.map((g) => ({ key: g.key, value: (typeof g.value === 'number' ? g.value : BigInt(g.value.i64)) as GlobalValue })),
  };
}

export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
