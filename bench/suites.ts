import type { Suite } from './lib.ts';
import { llmGrammarSuite, llmKvSuite, llmSuite, llmThreadsSuite } from './llm.ts';
import { parallelSuite } from './parallel.ts';
import { placementSuite } from './placement.ts';
import { pwaSuite } from './pwa.ts';
import { relaySuite } from './relay.ts';
import { runtimeSuite } from './runtime.ts';
import { scaleSuite } from './scale.ts';
import { securitySuite } from './security.ts';
import { sessionSuite } from './session.ts';
import { speculativeSuite } from './speculative.ts';

/** Every benchmark suite, by name. A suite lives in bench/<name>.ts and is registered here. */
export const suites: Suite[] = [sessionSuite, runtimeSuite, pwaSuite, relaySuite, llmSuite, llmGrammarSuite, llmThreadsSuite, llmKvSuite, placementSuite, parallelSuite, scaleSuite, securitySuite, speculativeSuite];
