import { LlamaGrammarEvaluationState, type Token } from 'node-llama-cpp';
import { loadNativeModel } from '../../server/llm/load-native.ts';

export interface GreedyRun {
  readonly prompt: string;
  /** BOS + the prompt tokenized with special tokens parsed, as llama.cpp's server (wllama) tokenizes a text prompt. */
  readonly promptTokens: number[];
  readonly tokens: number[];
  readonly text: string;
}

/**
 * Greedy (temperature 0) generation of up to `maxTokens` tokens per prompt with node-llama-cpp on the CPU, 1 thread,
 * under a GBNF `grammar` if given (a run ends early at an end-of-generation token, which it leaves out).
 */
export async function greedyRuns(modelPath: string, prompts: readonly string[], maxTokens = 64, grammar?: string): Promise<GreedyRun[]> {
  const { llama, model } = await loadNativeModel(modelPath, { gpu: false, threads: 1 });
  const compiled = grammar === undefined ? undefined : await llama.createGrammar({ grammar });
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  try {
    const sequence = context.getSequence();
    const runs: GreedyRun[] = [];
    for (const prompt of prompts) {
      await sequence.clearHistory();
      const bos = model.tokens.bos;
      const promptTokens: Token[] = [...(bos === null ? [] : [bos]), ...model.tokenize(prompt, true)];
      const tokens: Token[] = [];
      const grammarEvaluationState = compiled && new LlamaGrammarEvaluationState({ model, grammar: compiled });
      for await (const token of sequence.evaluate(promptTokens, { temperature: 0, ...(grammarEvaluationState ? { grammarEvaluationState } : {}) })) {
        tokens.push(token);
        if (tokens.length >= maxTokens) break;
      }
      runs.push({ prompt, promptTokens, tokens, text: model.detokenize(tokens) });
    }
    return runs;
  } finally {
    await context.dispose();
    await model.dispose();
  }
}
