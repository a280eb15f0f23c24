import { FerryError } from '../errors.ts';
import { cachedPromise } from '../promise-cache.ts';
import { ChatTemplate } from './chat-template.ts';
import type { Engine, EngineInfo, Prompt } from './engine.ts';
import type { ChatMessage } from './messages.ts';

/**
 * Prompt preparation, the same for every engine: messages → the model's own chat template → text → token ids
 * through the engine's tokenizer (special-token text parsed, BOS prepended when the model wants it). Engines that
 * run the same model file therefore see the same ids, which is what makes a transcript resumable anywhere.
 */

const templates = new WeakMap<EngineInfo, ChatTemplate>();

/** The chat template of an engine's model, compiled once per engine. */
export function chatTemplateOf(info: EngineInfo): ChatTemplate {
  let template = templates.get(info);
  if (!template) {
    if (info.chatTemplate === undefined) {
      throw new FerryError('llm/no-chat-template', `The model ${info.model} has no chat template, so messages cannot be rendered. Send a text or token prompt, or use a model file with tokenizer.chat_template.`);
    }
    template = new ChatTemplate(info.chatTemplate, { ...(info.bosToken ? { bos: info.bosToken } : {}), ...(info.eosToken ? { eos: info.eosToken } : {}) });
    templates.set(info, template);
  }
  return template;
}

/** Messages rendered with the model's chat template, ending where the assistant's reply begins. */
export function renderMessages(info: EngineInfo, messages: readonly ChatMessage[]): string {
  return chatTemplateOf(info).render(messages);
}

/**
 * The last few prompts each engine tokenized, by text: a step asks for the same prompt's ids several times (to fit
 * it, to generate, to record what the slot holds), and a moved step once more to prefill it ahead.
 */
const tokenized = new WeakMap<EngineInfo, Map<string, Promise<number[]>>>();
const TOKENIZED_PROMPTS = 4;

/** A text prompt's ids: special-token text parsed, BOS first when the model adds one and the text lacks it. */
export async function tokenizePrompt(engine: Pick<Engine, 'info' | 'tokenize'>, text: string): Promise<number[]> {
  let recent = tokenized.get(engine.info);
  if (!recent) tokenized.set(engine.info, (recent = new Map()));
  const ids = cachedPromise(recent, text, () => tokenizeText(engine, text));
  // Newest last: the oldest go first.
  recent.delete(text);
  recent.set(text, ids);
  while (recent.size > TOKENIZED_PROMPTS) recent.delete(recent.keys().next().value!);
  return [...(await ids)];
}

async function tokenizeText(engine: Pick<Engine, 'info' | 'tokenize'>, text: string): Promise<number[]> {
  const { info } = engine;
  const ids = await engine.tokenize(text, { special: true });
  const addBos = info.addBos ?? info.bosToken !== undefined;
  if (!addBos || info.bosToken === undefined) return ids;
  const bos = await engine.tokenize(info.bosToken, { special: true });
  if (bos.length !== 1) {
    throw new FerryError('llm/bad-bos', `The model's BOS token ${JSON.stringify(info.bosToken)} is not one token (${bos.length}); the model file's tokenizer is inconsistent.`);
  }
  // A template that writes bos_token itself already put it there.
  return ids[0] === bos[0] ? ids : [bos[0]!, ...ids];
}

/** The exact prompt ids a generation request stands for. */
export async function preparePrompt(engine: Pick<Engine, 'info' | 'tokenize'>, prompt: Prompt): Promise<number[]> {
  if ('tokens' in prompt) return checkTokenIds(prompt.tokens);
  if ('messages' in prompt) {
    if (prompt.messages.length === 0) throw new FerryError('llm/bad-request', 'The prompt has no messages.');
    return tokenizePrompt(engine, renderMessages(engine.info, prompt.messages));
  }
  return tokenizePrompt(engine, prompt.text);
}

/** Token ids from outside (a transcript, a request) must be non-negative integers; a vocabulary bound is the engine's. */
export function checkTokenIds(ids: readonly number[], vocabularySize = Infinity): number[] {
  if (ids.length === 0) throw new FerryError('llm/bad-request', 'The prompt is empty: give at least one token.');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabularySize) {
      throw new FerryError('llm/bad-token', `Token id ${String(id)} is not in the model's vocabulary (0 to ${vocabularySize - 1}). The transcript belongs to another tokenizer: re-tokenize it from its text.`, { details: { id } });
    }
  }
  return [...ids];
}
