import { describe, expect, test } from 'vitest';
import { ChatTemplate } from '../../src/core/llm/chat-template.ts';
import { isFerryError } from '../../src/core/errors.ts';

// The ChatML template that Qwen-family models ship (and the generated test models carry).
const chatml =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('chat template rendering', () => {
  test('renders ChatML with and without a generation prompt', () => {
    const template = new ChatTemplate(chatml);
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hi' },
    ];
    expect(template.render(messages)).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(template.render(messages, { addGenerationPrompt: false })).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  });

  test('passes bos/eos tokens to templates that use them', () => {
    const template = new ChatTemplate("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}", { bos: '<s>', eos: '</s>' });
    expect(template.render([{ role: 'user', content: 'x' }])).toBe('<s>[user]x</s>');
  });

  test('a template that does not parse or fails at render is a typed error', () => {
    expect(() => new ChatTemplate('{% for m in messages %}')).toThrow(expect.objectContaining({ code: 'llm/bad-chat-template' }) as Error);
    const raising = new ChatTemplate("{{ raise_exception('system messages are not supported') }}");
    try {
      raising.render([{ role: 'system', content: 'x' }]);
      expect.unreachable();
    } catch (err) {
      expect(isFerryError(err, 'llm/chat-template-failed')).toBe(true);
      expect((err as Error).message).toContain('system messages are not supported');
    }
  });
});
