/** GGUF model files: the header checker that guards llama.cpp, byte readers, and the tiny test-model generator. */
export { checkGguf, type GgufModelInfo } from './check.ts';
export { blobReader, bytesReader, type ByteReader } from './reader.ts';
export { GGUF_LIMITS } from './header.ts';
export { generateTinyModel, TINY_MODEL_DEFAULTS, type TinyModelParams } from './tiny-model.ts';
export { tokenizerOnlyModel } from './tokenizer-model.ts';
