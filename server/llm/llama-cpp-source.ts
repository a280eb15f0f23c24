import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * The llama.cpp commit node-llama-cpp's binaries are built from: the HEAD of the source it ships
 * (llama/gitRelease.bundle, whose text header names it) — the source the CPU engine's WebAssembly build compiles too
 * (scripts/build-llama-wasm.sh), so the two load each other's KV states. Undefined when the bundle cannot be read:
 * the engine's states are then its own.
 */
export function llamaCppCommit(): Promise<string | undefined> {
  return (commit ??= readCommit());
}

let commit: Promise<string | undefined> | undefined;

async function readCommit(): Promise<string | undefined> {
  try {
    const root = path.dirname(path.dirname(createRequire(import.meta.url).resolve('node-llama-cpp')));
    const file = await open(path.join(root, 'llama', 'gitRelease.bundle'));
    try {
      const head = Buffer.alloc(256);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      // "# v2 git bundle", then "<sha> HEAD".
      return /^# v[23] git bundle\n(?:@[^\n]*\n)*([0-9a-f]{40}) HEAD\n/.exec(head.subarray(0, bytesRead).toString('latin1'))?.[1];
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}
