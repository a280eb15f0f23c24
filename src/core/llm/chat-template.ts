import { Template } from '@huggingface/jinja';
import { FerryError } from '../errors.ts';
import type { ChatMessage } from './messages.ts';

export interface TemplateTokens {
  bos?: string;
  eos?: string;
}

/**
 * A model's own chat template (Jinja, from `tokenizer.chat_template` in the GGUF or the model config), compiled
 * once. Every engine renders prompts through it, so a transcript becomes the same text — and, with the same
 * tokenizer, the same token ids — wherever the session runs.
 */
export class ChatTemplate {
  readonly #template: Template;
  readonly #tokens: TemplateTokens;

  constructor(source: string, tokens: TemplateTokens = {}) {
    try {
      this.#template = new Template(source);
    } catch (cause) {
      throw new FerryError('llm/bad-chat-template', `The model's chat template does not parse: ${(cause as Error).message}. Use a model file with a valid tokenizer.chat_template.`, { cause });
    }
    this.#tokens = tokens;
  }

  /** Renders messages; with `addGenerationPrompt` the text ends where the assistant's reply begins. */
  render(messages: readonly ChatMessage[], { addGenerationPrompt = true } = {}): string {
    try {
      return this.#template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.#tokens.bos ?? '',
        eos_token: this.#tokens.eos ?? '',
      });
    } catch (cause) {
      throw new FerryError('llm/chat-template-failed', `The model's chat template failed to render these messages: ${(cause as Error).message}.`, { cause });
    }
  }
}
