/**
 * `docs`: a document store with ranked search. Documents are split into passages and indexed with BM25, so an
 * agent can add its sources once, find the passages that answer a question, and quote them with a citation
 * (document id and passage number). All of it is module state, checkpointed by the host with the memory image.
 */
import { clip, int, optInt, optStr, parseArgs, str, type Args } from '../lib/args.ts';
import { docsSpec } from './spec.ts';
import { DocStore, LIMITS } from './store.ts';

const store = new DocStore();
const OPS = ['add', 'search', 'get', 'list', 'remove'] as const;

export function describe() {
  return { name: docsSpec.name, description: docsSpec.description, argsSchema: JSON.stringify(docsSpec.parameters), capabilities: [] as string[] };
}

/** The ok value is JSON text; a thrown string becomes the WIT `err` — a message meant for the model. */
export function invoke(text: string): string {
  try {
    return JSON.stringify(run(parseArgs(text, OPS)));
  } catch (err) {
    throw typeof err === 'string' ? err : `The document store failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function run(args: Args & { op: string }): unknown {
  switch (args.op) {
    case 'add': {
      const doc = store.add(str(args, 'title', { maxLength: LIMITS.titleChars }), str(args, 'text', { maxLength: LIMITS.docChars }), optStr(args, 'source', { maxLength: 2000 }));
      return { doc: doc.id, title: doc.title, passages: doc.passages.length, characters: doc.characters };
    }
    case 'search': {
      const hits = store.search(str(args, 'query', { maxLength: 2000 }), optInt(args, 'k', 1, 20) ?? 5, optInt(args, 'doc', 1, Number.MAX_SAFE_INTEGER));
      return { results: hits };
    }
    case 'get': return get(int(args, 'doc', 1, Number.MAX_SAFE_INTEGER), optInt(args, 'passage', 1, Number.MAX_SAFE_INTEGER));
    case 'list': return { documents: [...store.docs.values()].map((d) => ({ doc: d.id, title: d.title, source: d.source ?? null, passages: d.passages.length, characters: d.characters })) };
    case 'remove': {
      const id = int(args, 'doc', 1, Number.MAX_SAFE_INTEGER);
      store.remove(id);
      return { removed: id };
    }
    default: throw `Unknown op "${args.op}".`;
  }
}

function get(id: number, passage: number | undefined): unknown {
  const doc = store.get(id);
  if (passage !== undefined) {
    const p = doc.passages[passage - 1];
    if (!p) throw `Document ${id} has ${doc.passages.length} passages; "passage" must be between 1 and ${doc.passages.length}.`;
    return { doc: id, title: doc.title, source: doc.source ?? null, passage, of: doc.passages.length, text: p.text };
  }
  return { doc: id, title: doc.title, source: doc.source ?? null, passages: doc.passages.length, text: clip(doc.passages.map((p) => p.text).join('\n\n'), LIMITS.resultChars) };
}
