/** The LLM core: the one Engine interface and what every engine shares (prompts, transcripts, stops, stats). */
export type * from './engine.ts';
export type { ChatMessage } from './messages.ts';
export { ChatTemplate } from './chat-template.ts';
export { chatTemplateOf, renderMessages, tokenizePrompt, preparePrompt, checkTokenIds } from './prompt.ts';
export { transcriptTokens, resumeRequest, type Transcript, type TranscriptIds, type PartialGeneration, type ResumePlan } from './transcript.ts';
export { StopSequences, checkStopSequences, MAX_STOP_SEQUENCES, MAX_STOP_LENGTH } from './stop.ts';
export { GenerationClock, remoteStats } from './stats.ts';
export { tokenizerIdOf, tokenizerIdOfGguf, ggufVocabulary, type Vocabulary } from './tokenizer-id.ts';
export { generateAll, type DoneEvent } from './collect.ts';
export { checkRequest, roomAfter } from './request.ts';
export { canonicalKv, checkKvState, corruptKv, kvForStreams, kvTokens, kvFormatOf, llamaCppKvFormat } from './kv-state.ts';
export { openWithFallback, canFallBack, FallbackEngine, type EngineSwitch, type FallbackOptions } from './fallback-engine.ts';
export { acceptDraft, engineVerifier, speculativeDecode, speculativeRounds, DraftLength, type SpeculativeRound, type DraftVerifier, type Verdict, type DraftLengthOptions, type SpeculativeRequest, type SpeculativeResult } from './speculative.ts';
export { SpeculativeEngine, type SpeculativeEngineOptions, type VerifierSource } from './speculative-engine.ts';
