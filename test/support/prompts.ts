/** Prompts that both engines (node-llama-cpp and wllama) generate from in the cross-engine tests. */
export const GREEDY_PROMPTS = [
  'Once upon a time',
  'hello world, the ferry',
  '<|im_start|>user\nWhat is a token?<|im_end|>\n<|im_start|>assistant\n',
  'émoji 🚢 and  two spaces\tand a tab',
];

/** Model settings shared by the native and browser tests, so both sides generate the same file. */
export const TEST_MODELS = [
  { type: 'f32', seed: 1 },
  { type: 'f16', seed: 2, embd: 96, heads: 6, kvHeads: 2, ff: 192 },
] as const;
