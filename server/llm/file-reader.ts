import { open } from 'node:fs/promises';
import type { ByteReader } from '../../src/core/llm/gguf/index.ts';

/** A ByteReader over a file on disk: reads only the ranges asked for, so multi-GB models stay on disk. */
export async function openFileReader(path: string): Promise<ByteReader & { close(): Promise<void> }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    return {
      size,
      async read(offset, length) {
        const buffer = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
        let filled = 0;
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, offset + filled);
          if (bytesRead === 0) break; // the file shrank under us: return what there is
          filled += bytesRead;
        }
        return buffer.subarray(0, filled);
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
