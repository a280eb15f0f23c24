/**
 * The CPU engine's grammar pick: its fast paths (a first-byte table per state, llama.cpp's greedy token tried first
 * after a most likely pick, the whole vocabulary fetched at once) pick exactly what the plain definition picks — the
 * most likely token the grammar allows, the lowest id of equally likely ones — over many random logit vectors and the
 * grammar states a tool call walks through. The engine's calls are played over each step's logits as its C does them
 * (native/llama-wasm/ferry-llama.c: argmax, candidates sorted by logit then id); the real engine runs in
 * test/browser/tool-grammar-wllama.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { grammarPick, type PickerModel } from '../../../src/browser/llm/cpu-picker.ts';
import { gbnfMatcher, type GbnfMatcher } from '../../../src/core/llm/gbnf.ts';
import { seededRandom as random } from '../../../src/core/random.ts';
import { toolCallGrammar } from '../../../src/core/llm/tool-grammar.ts';
import { docsSpec } from '../../../components/docs/spec.ts';
import { notesSpec } from '../../../components/notes/spec.ts';
import { workspaceSpec } from '../../../components/workspace/spec.ts';

const EOG = 0;
const encoder = new TextEncoder();

/** Every byte alone (UTF-8 fragments and NUL included), ASCII characters, JSON-ish words, multi-byte characters. */
function vocabulary(): Uint8Array[] {
  const pieces: Uint8Array[] = [new Uint8Array()]; // id 0: end of generation
  for (let b = 0; b < 256; b++) pieces.push(Uint8Array.of(b));
  const words = ['{"', '"}', '":', '", "', 'name', '"name"', 'arguments', ' {', '}}', ': "', 'notes', '_', 'path', 'text', 'query', 'true', 'false', 'null', '0', '12', '-3', '.5', 'e+', ' ', '\n', '\\"', '\\n', '\\u00', 'é', '€', '日本', 'ab', 'the', ' the', '<tool_call>', '<tool', '_call>', '</tool_call>', '\n</', '[', '],', '"]'];
  for (const w of words) pieces.push(encoder.encode(w));
  pieces.push(Uint8Array.of(0xe2, 0x82), Uint8Array.of(0xac, 0x41), Uint8Array.of(0x41, 0x00, 0x42), Uint8Array.of(0xc3));
  return pieces;
}

/** The engine's logits calls over one step's logits, as ferry-llama.c makes them. */
function fakeLlama(pieces: Uint8Array[]): { llama: PickerModel['llama']; step(logits: Float64Array): void; greedyCalls: number } {
  let logits: Float64Array = new Float64Array(pieces.length);
  const state = {
    greedyCalls: 0,
    step(l: Float64Array) {
      logits = l;
    },
    llama: {
      isEog: (id: number) => id === EOG,
      // fl_argmax: the highest logit, the lowest id of equal ones.
      argmax: () => {
        state.greedyCalls++;
        return logits.indexOf(Math.max(...logits));
      },
      // fl_top: softmax, sorted by logit, then by id.
      top: (k: number) => {
        const max = Math.max(...logits);
        const sum = logits.reduce((a, l) => a + Math.exp(l - max), 0);
        const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]! || a - b);
        return order.slice(0, k).map((id) => ({ token: id, p: Math.exp(logits[id]! - max) / sum }));
      },
    },
  };
  return state;
}

/** The plain definition: of all allowed tokens, the most likely; of equally likely ones, the lowest id. */
function reference(pieces: Uint8Array[], grammar: GbnfMatcher, logits: Float64Array): number | undefined {
  let best: number | undefined;
  for (let id = 0; id < pieces.length; id++) {
    const ok = id === EOG ? grammar.canEnd : grammar.allowsPiece(pieces[id]!);
    if (ok && (best === undefined || logits[id]! > logits[best]!)) best = id;
  }
  return best;
}

describe('CPU engine grammar pick', () => {
  it('picks what the plain definition picks, over random logits and the states of tool calls', async () => {
    const pieces = vocabulary();
    const gbnf = toolCallGrammar([notesSpec, workspaceSpec, docsSpec], { withOpenTag: true, budget: 200 }).gbnf;
    const next = random(7);
    const fake = fakeLlama(pieces);
    const model: PickerModel = { llama: fake.llama, piece: (id) => pieces[id]!, vocabularySize: pieces.length };
    let steps = 0;
    let greedyHits = 0;
    for (let walk = 0; walk < 40; walk++) {
      const grammar = gbnfMatcher(gbnf);
      for (let i = 0; i < 150; i++) {
        // Logits on a coarse grid, so that equal logits (ties) are common, the top one included.
        const logits = Float64Array.from(pieces, () => Math.round(next() * (walk % 2 === 0 ? 8 : 40)) / 4);
        // Free text is where a model's top token is mostly allowed: lift the allowed ones at times.
        if (next() < 0.5) pieces.forEach((piece, id) => id !== EOG && grammar.allowsPiece(piece) && (logits[id]! += 3));
        const firstByte = grammar.firstByteTest();
        for (const piece of pieces) if (grammar.allowsPiece(piece)) expect(firstByte(piece[0]!)).toBe(true);
        const expected = reference(pieces, grammar, logits);
        const calls = fake.greedyCalls;
        fake.step(logits);
        const { id: picked, top } = grammarPick(model, grammar, next() < 0.5);
        const max = Math.max(...logits);
        expect(picked).toBe(expected);
        expect(top).toBe(logits[picked] === max);
        if (fake.greedyCalls > calls && logits[picked] === max) greedyHits++;
        steps++;
        if (picked === EOG) break;
        grammar.acceptBytes(pieces[picked]!);
      }
    }
    expect(steps).toBeGreaterThan(2000);
    expect(greedyHits).toBeGreaterThan(30);
  });

  it('refuses a dead end with a typed error', () => {
    const pieces = [new Uint8Array(), encoder.encode('a')];
    const fake = fakeLlama(pieces);
    fake.step(Float64Array.of(0, 0));
    const grammar = gbnfMatcher('root ::= "b"');
    expect(() => grammarPick({ llama: fake.llama, piece: (id) => pieces[id]!, vocabularySize: 2 }, grammar, true)).toThrow(expect.objectContaining({ code: 'llm/grammar-dead-end' }));
  });
});
