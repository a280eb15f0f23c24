import { FerryError } from '../../errors.ts';
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  SCALAR_WIDTH,
} from './format.ts';
import type { ByteReader } from './reader.ts';

/**
 * Reads a GGUF header (metadata and tensor infos) from untrusted bytes, checking the container's own rules:
 * every count and length is bounded before anything is allocated for it, and the tensor layout is the one
 * ggml's gguf.cpp accepts (in-order, aligned, contiguous, inside the file). Model-level rules live in check.ts.
 */

/** Bounds on what an untrusted header may ask for. Generous for real models (150k-token vocabularies). */
export const GGUF_LIMITS = {
  tensorCount: 100_000,
  metadataCount: 10_000,
  keyBytes: 65_535,
  stringBytes: 16 << 20,
  arrayLength: 10_000_000,
  /** The header is held in memory while it is checked. */
  headerBytes: 256 << 20,
} as const;

/** Strings stay raw bytes (keys and tokens are not guaranteed UTF-8); `utf8()` decodes one strictly. */
export type GgufScalar = number | bigint | boolean | Uint8Array;

export interface GgufEntry {
  readonly type: GgufValueType;
  /** Element type, for arrays. */
  readonly itemType?: GgufValueType;
  readonly value: GgufScalar | readonly GgufScalar[];
  /** Where the encoded value (type tag included) lies in the file: its exact bytes can be hashed. */
  readonly span: readonly [start: number, end: number];
}

export interface GgufTensorInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly ggmlType: number;
  /** Offset from the start of the data section. */
  readonly offset: number;
  readonly byteSize: number;
}

export interface GgufHeader {
  readonly version: 2 | 3;
  readonly metadata: ReadonlyMap<string, GgufEntry>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** File offset of the tensor data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
}

const CHUNK = 1 << 20;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch (cause) {
    throw new FerryError('gguf/bad-value', `The model file's ${what} is not valid UTF-8. The file is corrupt; download it again.`, { cause });
  }
}

export async function readGgufHeader(reader: ByteReader): Promise<GgufHeader> {
  const c = new Cursor(reader);
  await c.need(8);
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    throw new FerryError('gguf/bad-magic', 'This is not a GGUF model file (it does not start with "GGUF"). Choose a .gguf file made for llama.cpp.', {
      details: { magic: magic.toString(16).padStart(8, '0') },
    });
  }
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    throw new FerryError(
      'gguf/unsupported-version',
      `GGUF version ${version} is not supported (only 2 and 3; a huge number means a big-endian file). Convert the model with a current llama.cpp.`,
      { details: { version } },
    );
  }
  await c.need(16);
  const tensorCount = c.count('tensor count', GGUF_LIMITS.tensorCount);
  const metadataCount = c.count('metadata entry count', GGUF_LIMITS.metadataCount);

  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < metadataCount; i++) {
    const key = utf8(await c.string('a metadata key', GGUF_LIMITS.keyBytes), 'metadata key');
    if (metadata.has(key)) throw badValue(`The metadata key ${key} appears twice.`, key);
    const start = c.pos;
    await c.need(4);
    const type = c.u32();
    if (type === GgufValueType.ARRAY) {
      await c.need(12);
      const itemType = c.u32();
      const length = c.count(`the length of array ${key}`, GGUF_LIMITS.arrayLength);
      if (itemType === GgufValueType.ARRAY || !isValueType(itemType)) throw badValue(`The array ${key} has an unsupported element type ${itemType}.`, key);
      // Each element takes at least this many bytes: a length the file cannot hold is caught before looping.
      c.mustFit(length * (SCALAR_WIDTH[itemType] ?? 8), `array ${key}`);
      const items: GgufScalar[] = [];
      for (let j = 0; j < length; j++) items.push(await c.value(itemType, key));
      metadata.set(key, { type, itemType, value: items, span: [start, c.pos] });
    } else {
      if (!isValueType(type)) throw badValue(`The metadata key ${key} has an unknown value type ${type}.`, key);
      metadata.set(key, { type, value: await c.value(type, key), span: [start, c.pos] });
    }
  }

  const alignment = readAlignment(metadata);
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  let expectedOffset = 0;
  for (let i = 0; i < tensorCount; i++) {
    const rawName = await c.string('a tensor name', GGUF_LIMITS.keyBytes);
    const name = utf8(rawName, 'tensor name');
    if (rawName.length >= GGML_MAX_NAME) throw badTensor(`Tensor name ${name} is longer than ggml's ${GGML_MAX_NAME - 1} bytes.`, name);
    if (names.has(name)) throw badTensor(`Tensor ${name} appears twice.`, name);
    names.add(name);
    await c.need(4);
    const nDims = c.u32();
    if (nDims < 1 || nDims > GGML_MAX_DIMS) throw badTensor(`Tensor ${name} has ${nDims} dimensions; ggml allows 1 to ${GGML_MAX_DIMS}.`, name);
    await c.need(8 * nDims + 12);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.u64Number(`a dimension of tensor ${name}`));
    const ggmlType = c.u32();
    const offset = c.u64Number(`the offset of tensor ${name}`);
    const byteSize = tensorByteSize(name, dims, ggmlType);
    if (offset % alignment !== 0) {
      throw badTensor(`Tensor ${name} starts at offset ${offset}, which is not a multiple of the alignment ${alignment}.`, name);
    }
    if (offset !== expectedOffset) {
      // ggml requires tensors to be packed in order; anything else overlaps, leaves a gap or points elsewhere.
      throw badTensor(`Tensor ${name} has data offset ${offset}; the tensors before it end at ${expectedOffset}.`, name);
    }
    expectedOffset = offset + Math.ceil(byteSize / alignment) * alignment;
    tensors.push({ name, dims, ggmlType, offset, byteSize });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const last = tensors.at(-1);
  const dataEnd = dataOffset + (last ? last.offset + last.byteSize : 0);
  if (dataEnd > reader.size) throw truncated(dataEnd, reader.size);
  return { version: version === 2 ? 2 : 3, metadata, tensors, alignment, dataOffset, fileSize: reader.size };
}

function readAlignment(metadata: ReadonlyMap<string, GgufEntry>): number {
  const entry = metadata.get('general.alignment');
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  const value = entry.value;
  if (entry.type !== GgufValueType.UINT32 || typeof value !== 'number' || value === 0 || (value & (value - 1)) !== 0) {
    throw badValue('general.alignment must be a uint32 power of two.', 'general.alignment');
  }
  return value;
}

function tensorByteSize(name: string, dims: readonly number[], ggmlType: number): number {
  const type = GGML_TYPES.get(ggmlType);
  if (!type) throw badTensor(`Tensor ${name} has ggml type ${ggmlType}, which this version does not know.`, name);
  let elements = 1;
  for (const dim of dims) {
    if (dim < 1) throw badTensor(`Tensor ${name} has an empty dimension.`, name);
    elements *= dim;
    if (!Number.isSafeInteger(elements)) throw limit(`the element count of tensor ${name}`, Number.MAX_SAFE_INTEGER);
  }
  if ((dims[0] ?? 0) % type.blockSize !== 0) {
    throw badTensor(`Tensor ${name} has rows of ${dims[0]} elements, not a multiple of the ${type.name} block size ${type.blockSize}.`, name);
  }
  return (elements / type.blockSize) * type.typeSize;
}

function isValueType(type: number): type is GgufValueType {
  return type === GgufValueType.STRING || type === GgufValueType.ARRAY || SCALAR_WIDTH[type as GgufValueType] !== undefined;
}

function badValue(message: string, key: string): FerryError {
  return new FerryError('gguf/bad-value', `${message} The model file is malformed; convert or download it again.`, { details: { key } });
}

function badTensor(message: string, tensor: string): FerryError {
  return new FerryError('gguf/bad-tensor', `${message} The model file is malformed; convert or download it again.`, { details: { tensor } });
}

function limit(what: string, max: number, value?: number | bigint): FerryError {
  return new FerryError('gguf/limit-exceeded', `The model file declares ${what} beyond the limit of ${max}; it is corrupt or hostile. Use a different file.`, {
    details: { what, max, ...(value === undefined ? {} : { value: String(value) }) },
  });
}

function truncated(needed: number, size: number): FerryError {
  return new FerryError('gguf/truncated', `The model file is truncated: it needs at least ${needed} bytes but has ${size}. Download it again.`, {
    details: { needed, size },
  });
}

/** A forward cursor over the reader, buffering chunks; `need(n)` before reading n bytes synchronously. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(private readonly reader: ByteReader) {}

  mustFit(bytes: number, what: string): void {
    if (this.pos + bytes > this.reader.size) throw truncated(this.pos + bytes, this.reader.size);
    if (this.pos + bytes > GGUF_LIMITS.headerBytes) throw limit(`a header larger than ${GGUF_LIMITS.headerBytes} bytes (at ${what})`, GGUF_LIMITS.headerBytes);
  }

  async need(n: number): Promise<void> {
    const end = this.pos + n;
    if (end <= this.bufStart + this.buf.length) return;
    this.mustFit(n, `offset ${this.pos}`);
    const length = Math.min(Math.max(n, CHUNK), this.reader.size - this.pos);
    const bytes = await this.reader.read(this.pos, length);
    if (bytes.length < n) throw truncated(end, this.pos + bytes.length);
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bufStart = this.pos;
  }

  u32(): number {
    const v = this.view.getUint32(this.pos - this.bufStart, true);
    this.pos += 4;
    return v;
  }

  private u64(): bigint {
    const v = this.view.getBigUint64(this.pos - this.bufStart, true);
    this.pos += 8;
    return v;
  }

  u64Number(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw limit(what, Number.MAX_SAFE_INTEGER, v);
    return Number(v);
  }

  count(what: string, max: number): number {
    const v = this.u64();
    if (v > BigInt(max)) throw limit(what, max, v);
    return Number(v);
  }

  async string(what: string, maxBytes: number): Promise<Uint8Array> {
    await this.need(8);
    const length = this.count(`${what} of length`, maxBytes);
    this.mustFit(length, what);
    await this.need(length);
    const at = this.pos - this.bufStart;
    this.pos += length;
    return this.buf.subarray(at, at + length);
  }

  async value(type: GgufValueType, key: string): Promise<GgufScalar> {
    if (type === GgufValueType.STRING) return this.string(`a string in ${key}`, GGUF_LIMITS.stringBytes);
    const width = SCALAR_WIDTH[type] ?? 0;
    await this.need(width);
    const at = this.pos - this.bufStart;
    this.pos += width;
    const v = this.view;
    switch (type) {
      case GgufValueType.UINT8: return v.getUint8(at);
      case GgufValueType.INT8: return v.getInt8(at);
      case GgufValueType.UINT16: return v.getUint16(at, true);
      case GgufValueType.INT16: return v.getInt16(at, true);
      case GgufValueType.UINT32: return v.getUint32(at, true);
      case GgufValueType.INT32: return v.getInt32(at, true);
      case GgufValueType.FLOAT32: return v.getFloat32(at, true);
      case GgufValueType.BOOL: {
        const b = v.getUint8(at);
        if (b > 1) throw badValue(`The metadata key ${key} holds a boolean that is neither 0 nor 1.`, key);
        return b === 1;
      }
      case GgufValueType.UINT64: return v.getBigUint64(at, true);
      case GgufValueType.INT64: return v.getBigInt64(at, true);
      case GgufValueType.FLOAT64: return v.getFloat64(at, true);
      default: throw badValue(`The metadata key ${key} has an unknown value type ${type}.`, key);
    }
  }
}
