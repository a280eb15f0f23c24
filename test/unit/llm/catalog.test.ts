/**
 * The model catalog: every built-in entry is well-formed by its schema, points at one GGUF file on Hugging Face
 * (revision-pinned where the revision is known), names web-llm models that really are in web-llm's prebuilt list,
 * and looks up by name and by file; a deployment's own catalog is checked by the same schema, with a message that
 * says which entry is wrong.
 */
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { prebuiltAppConfig } from '@mlc-ai/web-llm';
import { CatalogEntrySchema, CatalogSchema, DEMO_MODEL, MODEL_CATALOG, ModelCatalog, parseCatalog, type CatalogEntry } from '../../../src/core/llm/catalog.ts';
import { isFerryError } from '../../../src/core/errors.ts';

const catalog = new ModelCatalog();
const entry = (over: Partial<CatalogEntry> = {}): CatalogEntry => ({ ...MODEL_CATALOG[0]!, ...over });

describe('the built-in model catalog', () => {
  it('lists the small instruct models, each entry valid by the schema', () => {
    expect(MODEL_CATALOG.map((e) => e.name)).toEqual(['qwen2.5-0.5b', 'qwen2.5-1.5b', 'qwen2.5-3b', 'llama3.2-1b', 'llama3.2-3b', 'smollm2-1.7b', 'gemma2-2b', 'phi3.5-mini']);
    for (const e of MODEL_CATALOG) expect(v.safeParse(CatalogEntrySchema, e).success, e.name).toBe(true);
    expect(v.safeParse(CatalogSchema, MODEL_CATALOG).success).toBe(true);
    expect(MODEL_CATALOG.map((e) => e.name)).not.toContain(DEMO_MODEL.name);
  });

  it('points every entry at one GGUF file on Hugging Face, with a plausible size for its parameters and quantization', () => {
    for (const e of MODEL_CATALOG) {
      const m = /^https:\/\/huggingface\.co\/([\w.-]+\/[\w.-]+)\/resolve\/(main|[0-9a-f]{40})\/([\w.-]+\.gguf)$/.exec(e.url);
      expect(m, e.name).not.toBeNull();
      expect(m![3]!.toLowerCase(), e.name).toContain(e.quantization.toLowerCase());
      // Q4_K_M stores about 4.5–6 bits a weight (embeddings and outputs are kept wider): a size far outside that is a typo.
      const params = Number(e.parameters.slice(0, -1)) * (e.parameters.endsWith('B') ? 1e9 : 1e6);
      const bitsPerWeight = (e.bytes * 8) / params;
      expect(bitsPerWeight, e.name).toBeGreaterThan(4);
      expect(bitsPerWeight, e.name).toBeLessThan(8.5);
    }
  });

  it('names only web-llm models that web-llm ships, of the same family', () => {
    const shipped = new Set(prebuiltAppConfig.model_list.map((m) => m.model_id));
    for (const e of MODEL_CATALOG) {
      expect(e.webLlm.length, e.name).toBeGreaterThan(0);
      for (const id of e.webLlm) {
        expect(shipped.has(id), `${e.name}: ${id}`).toBe(true);
        expect(id.toLowerCase().replace(/[^a-z0-9]/g, ''), `${e.name}: ${id}`).toContain(e.label.split(' ').slice(0, 2).join('').toLowerCase().replace(/[^a-z0-9]/g, '').replace('instruct', ''));
      }
    }
  });

  it('finds entries by name and by file, and says what there is for an unknown name', () => {
    expect(catalog.get('qwen2.5-0.5b')?.bytes).toBe(491_400_032);
    expect(catalog.bySha256('1d0e9419ec4e12aef73ccf4ffd122703e94c48344a96bc7c5f0f2772c2152ce3')?.name).toBe('llama3.2-1b');
    let caught: unknown;
    try {
      catalog.require('qwen2.5-7b');
    } catch (err) {
      caught = err;
    }
    expect(isFerryError(caught, 'model/unknown-model')).toBe(true);
    expect((caught as Error).message).toMatch(/did you mean qwen2\.5-0\.5b or qwen2\.5-1\.5b or qwen2\.5-3b\?.*Catalog models: qwen2\.5-0\.5b, /);
  });
});

describe("a deployment's own catalog", () => {
  it('adds entries (any http(s) URL, e.g. a mirror) and overrides built-in ones by name', () => {
    const mirror = entry({ name: 'qwen2.5-0.5b', url: 'http://mirror.internal/models/q.gguf' });
    const own = entry({ name: 'tiny', sha256: 'a'.repeat(64), webLlm: [] });
    const merged = ModelCatalog.with([mirror, own]);
    expect(merged.get('qwen2.5-0.5b')?.url).toBe('http://mirror.internal/models/q.gguf');
    expect(merged.get('tiny')).toEqual(own);
    expect(merged.entries).toHaveLength(MODEL_CATALOG.length + 1);
  });

  it.each([
    ['a bad hash', [entry({ sha256: 'ABC' })], /at 0\.sha256: a SHA-256 is 64 lowercase hex digits/],
    ['a path for a name', [entry({ name: '../x' })], /at 0\.name/],
    ['a zero size', [entry({ bytes: 0 })], /at 0\.bytes/],
    ['a file URL', [entry({ url: 'file:///etc/passwd' })], /at 0\.url/],
    ['an unknown field', [{ ...entry(), extra: 1 }], /invalid/],
    ['a missing field', [{ ...entry(), sha256: undefined }], /at 0\.sha256/],
    ['a name twice', [entry(), entry({ sha256: 'b'.repeat(64) })], /names must be unique/],
    ['not a list', { models: [] }, /invalid/],
  ])('refuses %s with a typed error that says where', (_what, json, message) => {
    let caught: unknown;
    try {
      parseCatalog(json, 'in test.json');
    } catch (err) {
      caught = err;
    }
    expect(isFerryError(caught, 'model/bad-catalog')).toBe(true);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).toContain('in test.json');
  });
});
