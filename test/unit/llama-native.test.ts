import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyModel, tinyVocabulary, TokenType } from '../../src/core/llm/gguf/tiny-model.ts';
import { loadNativeModel } from '../../server/llm/load-native.ts';
import { greedyRuns, type GreedyRun } from '../support/native-greedy.ts';
import { GREEDY_PROMPTS, TEST_MODELS } from '../support/prompts.ts';

const run = promisify(execFile);
const vocab = tinyVocabulary();

let dir: string;
const paths: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-llama-native-'));
  for (const [i, params] of TEST_MODELS.entries()) {
    paths.push(join(dir, `model-${i}.gguf`));
    await writeFile(paths[i] ?? '', generateTinyModel(params));
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('node-llama-cpp on a generated model (CPU, 1 thread)', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    ({ model } = await loadNativeModel(paths[0] ?? '', { gpu: false, threads: 1 }));
  });
  afterAll(async () => {
    await model.dispose();
  });

  it.each([
    'hello world',
    'The ferry, once upon a time: 42 + 7 = 49!',
    'naïve café — 日本語 🚢🦀',
    'two  spaces, a\ttab,\nnew lines\n\n and trailing space ',
    '<|im_start|> is plain text here',
  ])('tokenizes and detokenizes %j exactly', (text) => {
    const tokens = model.tokenize(text);
    expect(tokens.length).toBeGreaterThan(0);
    expect(model.detokenize(tokens)).toBe(text);
    // Without special-token parsing, nothing maps to a control token; non-ASCII goes through byte fallback.
    expect(tokens.every((t) => vocab.types[t] !== TokenType.CONTROL)).toBe(true);
  });

  it('uses whole-word tokens and byte fallback', () => {
    const ids = (text: string) => model.tokenize(text).map((t) => vocab.tokens[t]);
    expect(ids('hello world')).toEqual(['▁hello', '▁world']);
    expect(ids('🚢')).toEqual(['▁', '<0xF0>', '<0x9F>', '<0x9A>', '<0xA2>']);
    expect(model.tokenize('<|im_start|>', true)).toEqual([3]);
  });

  it('generates 64 printable tokens greedily, the same each time', async () => {
    const first = await greedyRuns(paths[0] ?? '', GREEDY_PROMPTS);
    for (const r of first) {
      expect(r.promptTokens[0]).toBe(1); // BOS
      expect(r.tokens).toHaveLength(64);
      expect(r.tokens.every((t) => vocab.types[t] === TokenType.NORMAL)).toBe(true);
      expect(new Set(r.tokens).size).toBeGreaterThan(8); // not stuck on one token
    }
    expect(new Set(first.map((r) => r.tokens.join())).size).toBe(GREEDY_PROMPTS.length); // prompts matter
    expect(await greedyRuns(paths[0] ?? '', GREEDY_PROMPTS)).toEqual(first);
  });
});

describe('greedy generation across processes', () => {
  it('two child processes and this one give identical ids (f32 and f16 models)', async () => {
    const child = async (): Promise<GreedyRun[][]> => {
      const job = JSON.stringify({ models: paths, prompts: GREEDY_PROMPTS });
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/support/native-run.ts', 'generate', job], { timeout: 90_000 });
      return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as GreedyRun[][];
    };
    const [a, b] = await Promise.all([child(), child()]);
    const here: GreedyRun[][] = [];
    for (const path of paths) here.push(await greedyRuns(path, GREEDY_PROMPTS));
    expect(a).toEqual(b);
    expect(a).toEqual(here);
    expect(here.flat().every((r) => r.tokens.length === 64)).toBe(true);
    expect(here[0]?.[0]?.tokens).not.toEqual(here[1]?.[0]?.tokens); // two different models really ran
  });
});
