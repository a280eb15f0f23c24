/**
 * The build's binaryen pass: a mutable global a module keeps to itself is invisible to the host, so a checkpoint
 * silently loses it — unless the pass exports it. Proven on a tiny counter module whose count lives in such a global.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { exportMutableGlobals, loadBinaryen, STATE_GLOBAL_PREFIX } from '../../../scripts/components/export-globals.ts';
import { captureImage, findSlots, writeImage } from '../../../src/core/runtime/image.ts';

let binaryen: Awaited<ReturnType<typeof loadBinaryen>>;

beforeAll(async () => {
  binaryen = await loadBinaryen();
});

/** `inc()` adds one to a private mutable global and returns it; `limit` is an exported immutable global. */
function counterModule(): Uint8Array {
  const m = new binaryen.Module();
  try {
    m.addGlobal('count', binaryen.i32, true, m.i32.const(0));
    m.addGlobal('limit', binaryen.i32, false, m.i32.const(100));
    m.addGlobalExport('limit', 'limit');
    const count = () => m.global.get('count', binaryen.i32);
    m.addFunction('inc', binaryen.none, binaryen.i32, [], m.block(null, [m.global.set('count', m.i32.add(count(), m.i32.const(1))), count()], binaryen.i32));
    m.addFunctionExport('inc', 'inc');
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** Calls inc() three times, captures, restores into a fresh instance and returns what its next inc() says. */
async function continueAfterRestore(bytes: Uint8Array): Promise<number> {
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  const first = await WebAssembly.instantiate(module);
  const inc = first.exports.inc as () => number;
  inc();
  inc();
  inc();
  const image = captureImage('counter', findSlots([first]));
  const fresh = await WebAssembly.instantiate(module);
  writeImage(image, findSlots([fresh]));
  return (fresh.exports.inc as () => number)();
}

describe('exportMutableGlobals', () => {
  it('without the pass, a private global is lost by a checkpoint', async () => {
    expect(await continueAfterRestore(counterModule())).toBe(1);
  });

  it('with the pass, the private global is exported and the count continues', async () => {
    const { bytes, added } = exportMutableGlobals(binaryen, counterModule());
    expect(added).toEqual([`${STATE_GLOBAL_PREFIX}0`]);
    expect(await continueAfterRestore(bytes)).toBe(4);
  });

  it('leaves immutable globals alone and a module with nothing hidden byte-identical', () => {
    const once = exportMutableGlobals(binaryen, counterModule()).bytes;
    const twice = exportMutableGlobals(binaryen, once);
    expect(twice.added).toEqual([]);
    expect(twice.bytes).toBe(once);
    const module = new WebAssembly.Module(once as Uint8Array<ArrayBuffer>);
    expect(WebAssembly.Module.exports(module).filter((e) => e.kind === 'global').map((e) => e.name).sort()).toEqual([`${STATE_GLOBAL_PREFIX}0`, 'limit']);
  });
});
