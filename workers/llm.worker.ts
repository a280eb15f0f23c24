/** The LLM worker: runs the chosen engine (wllama or web-llm) off the page's thread; the page talks to it through comlink. */
import { expose } from 'comlink';
import { createLlmWorkerApi } from '../src/browser/llm/worker-api.ts';

expose(createLlmWorkerApi());
