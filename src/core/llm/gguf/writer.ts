import { FerryError } from '../../errors.ts';
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType } from './format.ts';

/**
 * A small GGUF v3 writer: metadata in the given order, tensors packed in the given order at 32-byte alignment.
 * It writes what it is given; validity for llama.cpp is the caller's business (and check.ts's).
 */

export type GgufValue =
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'uint32' | 'int32' | 'float32'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string[]'; readonly value: readonly string[] }
  | { readonly type: 'uint32[]' | 'int32[]' | 'float32[]'; readonly value: ArrayLike<number> }
  /** An already encoded value (type tag included), copied as it is: e.g. another file's entry, by its span. */
  | { readonly type: 'raw'; readonly bytes: Uint8Array };

export interface GgufTensorSpec {
  readonly name: string;
  /** ggml order: dims[0] is the innermost (row) dimension. */
  readonly dims: readonly number[];
  readonly ggmlType: number;
  readonly data: Uint8Array;
}

export interface GgufFileSpec {
  readonly metadata: ReadonlyArray<readonly [key: string, value: GgufValue]>;
  readonly tensors: readonly GgufTensorSpec[];
}

const NUMBER_TYPES = { uint32: GgufValueType.UINT32, int32: GgufValueType.INT32, float32: GgufValueType.FLOAT32 } as const;

export function writeGguf(spec: GgufFileSpec): Uint8Array<ArrayBuffer> {
  const header = new Sink();
  header.u32(GGUF_MAGIC);
  header.u32(3);
  header.u64(spec.tensors.length);
  header.u64(spec.metadata.length);
  for (const [key, value] of spec.metadata) {
    header.str(key);
    writeValue(header, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of spec.tensors) {
    const expected = tensorByteSize(tensor);
    if (tensor.data.length !== expected) {
      throw new FerryError('gguf/bad-tensor', `Tensor ${tensor.name} has ${tensor.data.length} bytes of data; its shape and type need ${expected}.`, {
        details: { tensor: tensor.name, bytes: tensor.data.length, expected },
      });
    }
    header.str(tensor.name);
    header.u32(tensor.dims.length);
    for (const dim of tensor.dims) header.u64(dim);
    header.u32(tensor.ggmlType);
    header.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + expected);
  }
  const dataStart = alignUp(header.length);
  const out = new Uint8Array(dataStart + offset);
  out.set(header.bytes(), 0);
  spec.tensors.forEach((tensor, i) => out.set(tensor.data, dataStart + (offsets[i] ?? 0)));
  return out;
}

function tensorByteSize(tensor: GgufTensorSpec): number {
  const type = GGML_TYPES.get(tensor.ggmlType);
  if (!type) throw new FerryError('gguf/bad-tensor', `Tensor ${tensor.name} has unknown ggml type ${tensor.ggmlType}.`);
  const elements = tensor.dims.reduce((a, b) => a * b, 1);
  return (elements / type.blockSize) * type.typeSize;
}

function alignUp(n: number): number {
  return Math.ceil(n / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
}

function writeValue(sink: Sink, value: GgufValue): void {
  switch (value.type) {
    case 'raw':
      sink.raw(value.bytes);
      return;
    case 'string':
      sink.u32(GgufValueType.STRING);
      sink.str(value.value);
      return;
    case 'bool':
      sink.u32(GgufValueType.BOOL);
      sink.u8(value.value ? 1 : 0);
      return;
    case 'uint32':
    case 'int32':
    case 'float32':
      sink.u32(NUMBER_TYPES[value.type]);
      sink.num(NUMBER_TYPES[value.type], value.value);
      return;
    case 'string[]':
      sink.u32(GgufValueType.ARRAY);
      sink.u32(GgufValueType.STRING);
      sink.u64(value.value.length);
      for (const s of value.value) sink.str(s);
      return;
    case 'uint32[]':
    case 'int32[]':
    case 'float32[]': {
      const itemType = NUMBER_TYPES[value.type.slice(0, -2) as keyof typeof NUMBER_TYPES];
      sink.u32(GgufValueType.ARRAY);
      sink.u32(itemType);
      sink.u64(value.value.length);
      for (let i = 0; i < value.value.length; i++) sink.num(itemType, value.value[i] ?? 0);
      return;
    }
  }
}

/** A growable little-endian byte buffer. */
class Sink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private static readonly encoder = new TextEncoder();

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  u8(v: number): void {
    this.reserve(1).setUint8(this.length, v);
    this.length += 1;
  }

  u32(v: number): void {
    this.reserve(4).setUint32(this.length, v, true);
    this.length += 4;
  }

  u64(v: number): void {
    this.reserve(8).setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }

  num(type: (typeof NUMBER_TYPES)[keyof typeof NUMBER_TYPES], v: number): void {
    const view = this.reserve(4);
    if (type === GgufValueType.UINT32) view.setUint32(this.length, v, true);
    else if (type === GgufValueType.INT32) view.setInt32(this.length, v, true);
    else view.setFloat32(this.length, v, true);
    this.length += 4;
  }

  str(s: string): void {
    const encoded = Sink.encoder.encode(s);
    this.u64(encoded.length);
    this.raw(encoded);
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  private reserve(n: number): DataView {
    if (this.length + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      grown.set(this.bytes());
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    return this.view;
  }
}
