/** The page's measures, run in a Web Worker as the app runs its engines (where llama.cpp's threads may block-wait). */
import { expose } from 'comlink';
import { measureEngineThroughput, measureGrammarOverhead, measureKvResume } from '../../src/browser/llm/throughput.ts';

expose({ measureEngineThroughput, measureGrammarOverhead, measureKvResume });
