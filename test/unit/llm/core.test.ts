import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../../src/core/errors.ts';
import { GenerationClock, preparePrompt, resumeRequest, StopSequences, tokenizerIdOf, tokenizerIdOfGguf, transcriptTokens, type Vocabulary } from '../../../src/core/llm/index.ts';
import { bytesReader, generateTinyModel } from '../../../src/core/llm/gguf/index.ts';
import { tinyVocabulary } from '../../../src/core/llm/gguf/tiny-model.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

describe('stop sequences', () => {
  /** What a stop matcher emits for `text` fed in `cuts` pieces. */
  function run(stops: string[], text: string, cuts: number[]): { out: string; stopped: boolean } {
    const matcher = new StopSequences(stops);
    const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
    let out = '';
    let at = 0;
    for (const p of [...points, text.length]) {
      out += matcher.push(text.slice(at, p));
      at = p;
    }
    return { out: out + matcher.flush(), stopped: matcher.stopped };
  }

  it('emits exactly the text before the first stop, however the text is split', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\n') }), fc.array(fc.string({ minLength: 1, maxLength: 4, unit: fc.constantFrom('a', 'b', '\n') }), { minLength: 1, maxLength: 3 }), fc.array(fc.nat()), (text, stops, cuts) => {
        const firsts = stops.map((s) => text.indexOf(s)).filter((i) => i !== -1);
        const cut = firsts.length > 0 ? Math.min(...firsts) : -1;
        const result = run(stops, text, cuts);
        expect(result.out).toBe(cut === -1 ? text : text.slice(0, cut));
        expect(result.stopped).toBe(cut !== -1);
      }),
      { numRuns: 300 },
    );
  });

  it('waits for a stop that begins earlier than one already complete (found by the property above)', () => {
    expect(run(['\n', 'b\nb'], 'b\nb', [2])).toEqual({ out: '', stopped: true });
    expect(run(['\n', 'b\nb'], 'b\nc', [2])).toEqual({ out: 'b', stopped: true });
  });

  it('says whether it holds text back: only then can what it showed still grow at the end', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', '\n') }), { maxLength: 6 }), fc.array(fc.string({ minLength: 1, maxLength: 4, unit: fc.constantFrom('a', 'b', '\n') }), { minLength: 1, maxLength: 3 }), (pieces, stops) => {
        const matcher = new StopSequences(stops);
        for (const piece of pieces) matcher.push(piece);
        const holding = matcher.holding;
        expect(holding || matcher.flush() === '').toBe(true);
      }),
      { numRuns: 300 },
    );
    const matcher = new StopSequences(['STOP']);
    expect([matcher.push('go S'), matcher.holding]).toEqual(['go ', true]);
    expect([matcher.push('ay'), matcher.holding]).toEqual(['Say', false]);
  });

  it('refuses bad stop lists', () => {
    expect(() => new StopSequences([''])).toThrow(expect.objectContaining({ code: 'llm/bad-request' }) as Error);
    expect(() => new StopSequences(new Array<string>(17).fill('x'))).toThrow(expect.objectContaining({ code: 'llm/bad-request' }) as Error);
  });
});

describe('tokenizer ids', () => {
  const vocab = tinyVocabulary();
  const base: Vocabulary = { model: 'llama', tokens: vocab.tokens, types: vocab.types, scores: vocab.scores, addBos: true };

  it('depend on everything that changes tokenization, and on nothing else', async () => {
    const id = await tokenizerIdOf(base);
    expect(id).toMatch(/^tok1-[0-9a-f]{64}$/);
    expect(await tokenizerIdOf({ ...base, tokens: [...vocab.tokens] })).toBe(id);
    const variants: Vocabulary[] = [
      { ...base, model: 'gpt2' },
      { ...base, pre: 'qwen2' },
      { ...base, tokens: [...vocab.tokens.slice(0, -1), '▁zz'] },
      { ...base, types: vocab.types.map((t, i) => (i === 10 ? 1 : t)) },
      { ...base, scores: vocab.scores.map((s, i) => (i === 300 ? s + 1 : s)) },
      { ...base, merges: ['a b'] },
      { ...base, addBos: false },
      { ...base, addSpacePrefix: false },
      // Framing: moving a character across a token boundary is a different vocabulary.
      { ...base, tokens: ['ab', 'c', ...vocab.tokens.slice(2)] },
      { ...base, tokens: ['a', 'bc', ...vocab.tokens.slice(2)] },
    ];
    const ids = await Promise.all(variants.map((v) => tokenizerIdOf(v)));
    expect(new Set([id, ...ids]).size).toBe(variants.length + 1);
  });

  it('are the same for a GGUF file read in memory and the engine that loaded it', async () => {
    const fromBytes = await tokenizerIdOfGguf(bytesReader(generateTinyModel({ type: 'f16', seed: 5 })));
    expect(fromBytes).toBe(await tokenizerIdOf(base));
  });
});

describe('prompts and transcripts on a real engine', () => {
  let models: Awaited<ReturnType<typeof modelDir>>;
  let engine: NodeLlamaEngine;
  beforeAll(async () => {
    models = await modelDir();
    engine = await cpuEngine(await models.model('tiny.gguf'), { slots: 1 });
  });
  afterAll(async () => {
    await engine?.dispose();
    await models?.cleanup();
  });

  it('reuses ids from the same tokenizer and re-tokenizes text from another', async () => {
    const text = '<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n';
    const exact = await preparePrompt(engine, { text });
    // Ids that a plain re-tokenization would not produce (character by character): reused only when ids match.
    const odd = [1, ...(await engine.tokenize('h', { special: true })), ...(await engine.tokenize('ello', { special: true }))];
    const same = await transcriptTokens(engine, { tokenizerId: engine.info.tokenizerId, tokens: odd, text: 'hello' });
    expect(same).toEqual({ tokens: odd, reused: true });
    const other = await transcriptTokens(engine, { tokenizerId: 'tok1-other', tokens: [5, 6, 7], text });
    expect(other).toEqual({ tokens: exact, reused: false });
    const remote = await transcriptTokens(engine, { tokenizerId: '', tokens: [], text });
    expect(remote.reused).toBe(false);
  });

  it('plans a resume: exact ids and the remaining budget, or text when the tokenizer differs', async () => {
    const prompt = await preparePrompt(engine, { text: 'Once upon a time' });
    const id = engine.info.tokenizerId;
    const generated = await engine.tokenize(' the ferry');
    const plan = await resumeRequest(engine, {
      prompt: { tokenizerId: id, tokens: prompt, text: 'Once upon a time' },
      generated: { tokenizerId: id, tokens: generated, text: ' the ferry' },
      request: { maxTokens: 20, temperature: 0, stop: ['\n'] },
    });
    expect(plan).toEqual({ reused: true, request: { prompt: { tokens: [...prompt, ...generated] }, maxTokens: 20 - generated.length, temperature: 0, stop: ['\n'] } });
    const foreign = await resumeRequest(engine, {
      prompt: { tokenizerId: 'tok1-x', tokens: [9, 9], text: 'Once upon a time' },
      generated: { tokenizerId: 'tok1-x', tokens: [9, 9, 9], text: ' the ferry' },
      request: { maxTokens: 20 },
    });
    expect(foreign).toEqual({ reused: false, request: { prompt: { tokens: await preparePrompt(engine, { text: 'Once upon a time the ferry' }) }, maxTokens: 17 } });
    const done = await resumeRequest(engine, {
      prompt: { tokenizerId: id, tokens: prompt, text: '' },
      generated: { tokenizerId: id, tokens: new Array<number>(20).fill(300), text: '' },
      request: { maxTokens: 20 },
    }).catch((e: unknown) => e);
    expect(isFerryError(done, 'llm/resume-complete')).toBe(true);
  });
});

describe('generation stats', () => {
  it('splits prefill and decode at the first token', () => {
    let now = 1000;
    const clock = new GenerationClock(() => now);
    now = 1100; // 100 ms of prefill for 40 uncached tokens
    clock.token();
    now = 1150;
    clock.token();
    now = 1200; // 2 more tokens over 100 ms of decode
    clock.token();
    expect(clock.stats(50, 10, 3)).toEqual({ promptTokens: 50, cachedTokens: 10, completionTokens: 3, prefillMs: 100, decodeMs: 100, ttftMs: 100, prefillTps: 400, decodeTps: 20 });
    expect(new GenerationClock(() => 5).stats(3, 0, 0)).toMatchObject({ prefillTps: 0, decodeTps: 0 });
  });
});
