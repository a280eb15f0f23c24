import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { FerryError } from '../../src/core/errors.ts';
import { generateTinyModel, TINY_MODEL_DEFAULTS, type TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';

export const genModelUsage = `ferry gen-model --out FILE.gguf [--embd ${TINY_MODEL_DEFAULTS.embd}] [--layers ${TINY_MODEL_DEFAULTS.layers}] \
[--heads ${TINY_MODEL_DEFAULTS.heads}] [--kv-heads ${TINY_MODEL_DEFAULTS.kvHeads}] [--ff ${TINY_MODEL_DEFAULTS.ff}] \
[--ctx ${TINY_MODEL_DEFAULTS.ctx}] [--type f32|f16] [--seed ${TINY_MODEL_DEFAULTS.seed}]
  Writes a tiny llama-architecture GGUF model with seeded random weights (for tests and benchmarks).
  Same options → byte-identical file.`;

/** `ferry gen-model`: writes a tiny test model (see src/core/llm/gguf/tiny-model.ts). */
export async function genModelCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      out: { type: 'string' },
      embd: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      ff: { type: 'string' },
      ctx: { type: 'string' },
      type: { type: 'string' },
      seed: { type: 'string' },
    },
  });
  if (!values.out) throw new FerryError('cli/missing-flag', `gen-model needs --out FILE.gguf.\n\n${genModelUsage}`);
  const int = (flag: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value)) throw new FerryError('cli/bad-flag', `--${flag} must be a whole number, got "${value}".`);
    return Number(value);
  };
  const type = values.type ?? TINY_MODEL_DEFAULTS.type;
  if (type !== 'f32' && type !== 'f16') throw new FerryError('cli/bad-flag', `--type must be f32 or f16, got "${type}".`);
  const d = TINY_MODEL_DEFAULTS;
  const params: TinyModelParams = {
    embd: int('embd', values.embd, d.embd),
    layers: int('layers', values.layers, d.layers),
    heads: int('heads', values.heads, d.heads),
    kvHeads: int('kv-heads', values['kv-heads'], d.kvHeads),
    ff: int('ff', values.ff, d.ff),
    ctx: int('ctx', values.ctx, d.ctx),
    type,
    seed: int('seed', values.seed, d.seed),
  };
  const bytes = generateTinyModel(params);
  await writeFile(values.out, bytes);
  console.log(`wrote ${values.out} (${bytes.length} bytes; ${JSON.stringify(params)})`);
}
