/**
 * The CPU engine's KV state is llama.cpp's sequence state file, as node-llama-cpp's is: a state either saves, the other
 * loads, and goes on from exactly as the saver would have — so a session handed back from a cloud worker resumes on a
 * CPU-only device without prefilling its transcript there (the device's runtime loads the worker's KV entry).
 */
import { commands } from 'vitest/browser';
import { describe, expect, it } from 'vitest';
import { createCpuEngine } from '../../src/browser/llm/cpu-open.ts';
import type { CpuEngine } from '../../src/browser/llm/cpu-engine.ts';
import { isFerryError, type ErrorCode } from '../../src/core/errors.ts';
import { generateAll, type KvState } from '../../src/core/llm/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import type { WireKvState } from '../support/kv-commands.ts';
import { GREEDY_PROMPTS, TEST_MODELS } from '../support/prompts.ts';

const FIRST = 16;
const MORE = 24;

const toWire = (state: KvState): WireKvState => ({ engine: state.engine, model: state.model, tokens: [...state.tokens], bytes: btoa(Array.from(state.bytes, (b) => String.fromCharCode(b)).join('')) });
const fromWire = (state: WireKvState): KvState => ({ ...state, bytes: Uint8Array.from(atob(state.bytes), (c) => c.charCodeAt(0)) });

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(isFerryError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

/**
 * The same state with its first layer's key rows declared one byte longer and the bytes to match (the layout of
 * llama.cpp's sequence state: kv-state.ts): well formed, but not this model's KV.
 */
function otherRowSize(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tokens = view.getUint32(8, true);
  const entry = 12 + 4 * tokens + 4;
  const cells = view.getUint32(entry, true);
  const layer = entry + 4 + 12 * cells + 8;
  const row = view.getUint32(layer + 4, true);
  const rowsAt = layer + 12;
  const out = new Uint8Array(bytes.length + cells);
  out.set(bytes.subarray(0, rowsAt));
  new DataView(out.buffer).setUint32(layer + 4, row + 1, true);
  out.set(bytes.subarray(rowsAt + row * cells), rowsAt + (row + 1) * cells);
  return out;
}

/** Greedy generation of `maxTokens` from exactly `tokens`. */
const greedy = (engine: CpuEngine, tokens: readonly number[], maxTokens: number) => generateAll(engine, { prompt: { tokens }, maxTokens, temperature: 0 });

/** The engine after a greedy reply to prompt `i` (FIRST tokens), and the KV state that leaves. */
async function afterReply(engine: CpuEngine, i: number) {
  const prompt = await engine.tokenize(GREEDY_PROMPTS[i]!);
  const reply = await greedy(engine, prompt, FIRST);
  return { prompt, reply, state: await engine.saveKv('session') };
}

async function withEngine<T>(params: (typeof TEST_MODELS)[number], run: (engine: CpuEngine) => Promise<T>): Promise<T> {
  const engine = await createCpuEngine({ model: new Blob([generateTinyModel(params)]), contextSize: 512 });
  try {
    return await run(engine);
  } finally {
    await engine.dispose();
  }
}

describe.each(TEST_MODELS)('the CPU engine’s KV state, on the tiny model %o', (params) => {
  it('loads node-llama-cpp’s KV and goes on from it as node-llama-cpp does, prefilling none of it', async () => {
    await withEngine(params, async (engine) => {
      const prompt = await engine.tokenize(GREEDY_PROMPTS[1]!);
      const saved = await commands.nativeKvSave(params, prompt, FIRST);
      expect(engine.info.kvFormat).toMatch(/^llama\.cpp@[0-9a-f]{12}$/);
      expect(saved.kvFormat).toBe(engine.info.kvFormat);
      const state = saved.state!;
      expect(state.engine).toBe(engine.info.kvFormat);
      const next = [...prompt, ...saved.tokens];
      // node-llama-cpp going on from its own state: the reference.
      const reference = await commands.nativeKvLoad(params, state, next, MORE);
      expect(reference.cachedTokens).toBe(state.tokens.length);

      await engine.loadKv('session', fromWire(state));
      const resumed = await greedy(engine, next, MORE);
      expect(resumed.stats.cachedTokens).toBe(state.tokens.length);
      expect(resumed.tokens).toEqual(reference.tokens);
    });
  });

  it('saves a KV state node-llama-cpp loads and goes on from token for token', async () => {
    await withEngine(params, async (engine) => {
      const { prompt, reply: first, state } = await afterReply(engine, 0);
      expect(state).toMatchObject({ engine: engine.info.kvFormat, model: engine.info.model });
      expect(state.tokens).toEqual([...prompt, ...first.tokens.slice(0, -1)]);
      const next = [...prompt, ...first.tokens];
      const here = await greedy(engine, next, MORE);
      const there = await commands.nativeKvLoad(params, toWire(state), next, MORE);
      expect(there.cachedTokens).toBe(state.tokens.length);
      expect(there.tokens).toEqual(here.tokens);
    });
  });

  it('refuses another format’s, another model’s or a damaged state with a typed error, and goes on as if none was offered', async () => {
    await withEngine(params, async (engine) => {
      const { prompt, reply: fresh, state } = await afterReply(engine, 3);
      await expectCode(engine.loadKv('session', { ...state, engine: 'node-llama-cpp' }), 'llm/kv-mismatch');
      await expectCode(engine.loadKv('session', { ...state, model: '0'.repeat(64) }), 'llm/kv-mismatch');
      await expectCode(engine.loadKv('session', { ...state, tokens: [...state.tokens, 7] }), 'llm/kv-mismatch');
      // Cut short or run long: refused before llama.cpp, which would read past its end and abort.
      await expectCode(engine.loadKv('session', { ...state, bytes: state.bytes.subarray(0, state.bytes.length - 100) }), 'llm/kv-format');
      await expectCode(engine.loadKv('session', { ...state, bytes: Uint8Array.from([...state.bytes, 0]) }), 'llm/kv-format');
      // Whole but for another KV layout (a key row of another size): llama.cpp refuses it, and the context is left
      // empty rather than half-loaded.
      await expectCode(engine.loadKv('session', { ...state, bytes: otherRowSize(state.bytes) }), 'llm/kv-load-failed');
      const again = await greedy(engine, prompt, FIRST);
      expect(again.stats.cachedTokens).toBe(0);
      expect(again.tokens).toEqual(fresh.tokens);
    });
  });
});
