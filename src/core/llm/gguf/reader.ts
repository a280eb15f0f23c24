/**
 * Random access to a file's bytes, so a multi-GB model is never read whole: the GGUF checker reads only its header.
 * Implementations: in-memory bytes and Blob/File here; a node:fs file handle in server/llm/file-reader.ts.
 */
export interface ByteReader {
  /** Total size of the file in bytes. */
  readonly size: number;
  /** Bytes [offset, offset + length), fewer only where the file ends first. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function bytesReader(bytes: Uint8Array): ByteReader {
  return {
    size: bytes.length,
    read: async (offset, length) => bytes.subarray(offset, Math.min(bytes.length, offset + length)),
  };
}

export function blobReader(blob: Blob): ByteReader {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, Math.min(blob.size, offset + length)).arrayBuffer()),
  };
}
