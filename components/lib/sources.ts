/** Sources handed to the podcast and survey agents in their task, and their registration with the docs tool. */
import { field, isRecord, toolJson, type AgentAction, type WitToolResult } from './agent-kit.ts';

export interface Source {
  title: string;
  text: string;
  authors: string;
  year: string;
  url: string;
  /** The docs tool's id for it, once added. */
  doc?: number;
}

export const MAX_SOURCES = 40;
/** Characters of a source's text that go into one prompt; the full text is searchable through docs. */
export const SOURCE_PROMPT_CHARS = 12_000;

/** Sources from a task: strings or {title, text, authors?, year?, url?}; anything else is an error for the caller. */
export function parseSources(value: unknown): Source[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw '"sources" must be a list of texts or {title, text} objects.';
  if (value.length > MAX_SOURCES) throw `At most ${MAX_SOURCES} sources can be used at once (got ${value.length}).`;
  return value.map((s, i): Source => {
    if (typeof s === 'string') return { title: `Source ${i + 1}`, text: s, authors: '', year: '', url: '' };
    if (!isRecord(s)) throw `Source ${i + 1} must be a text or a {title, text} object.`;
    const text = field(s, 'text');
    if (text === '') throw `Source ${i + 1} has no "text".`;
    const year = typeof s.year === 'number' ? String(s.year) : field(s, 'year');
    const authors = Array.isArray(s.authors) ? s.authors.filter((a) => typeof a === 'string').join(', ') : field(s, 'authors');
    return { title: field(s, 'title') || `Source ${i + 1}`, text, authors, year, url: field(s, 'url'), };
  });
}

/** One `docs add` call per source; the call id carries the source's index. */
export function addToDocs(sources: readonly Source[]): AgentAction[] {
  return sources.map((s, i): AgentAction => ({
    tag: 'call-tool',
    val: { id: `src-${i}`, name: 'docs', args: JSON.stringify({ op: 'add', title: s.title, text: s.text, ...(s.url ? { source: s.url } : {}) }) },
  }));
}

/** Records a `docs add` result; returns true when it was one (whether or not it worked: without docs, prompts carry the text). */
export function onDocsAdded(sources: Source[], r: WitToolResult): boolean {
  const m = /^src-(\d+)$/.exec(r.id);
  if (!m) return false;
  const doc = r.ok ? toolJson(r.output)?.doc : undefined;
  const source = sources[Number(m[1])];
  if (source && typeof doc === 'number') source.doc = doc;
  return true;
}

/**
 * Sources the person added to the docs tool themselves (files, pasted text, web pages, added by the host before
 * the task): a task without "sources" reads them from there. First a `docs list`…
 */
export const DOCS_LIST_ID = 'docs-list';

export function listDocs(): AgentAction[] {
  return [{ tag: 'call-tool', val: { id: DOCS_LIST_ID, name: 'docs', args: JSON.stringify({ op: 'list' }) } }];
}

/** …whose documents become the sources (text empty until read, `doc` set: they are in docs already). */
export function sourcesFromList(r: WitToolResult): Source[] {
  if (!r.ok) throw `The document store could not list its documents: ${r.output}`;
  const docs = toolJson(r.output)?.documents;
  if (!Array.isArray(docs)) throw 'The document store answered its list with something that is not a list of documents.';
  if (docs.length > MAX_SOURCES) throw `The document store holds ${docs.length} documents; at most ${MAX_SOURCES} sources can be used at once. Remove some, or start from a checkpoint before they were added.`;
  return docs.filter(isRecord).flatMap((d): Source[] => (typeof d.doc === 'number' ? [{ title: field(d, 'title') || `Document ${d.doc}`, text: '', authors: '', year: '', url: field(d, 'source'), doc: d.doc }] : []));
}

/** …then, where the text itself is needed, one `docs get` per source (the call id carries its index)… */
export function readDocs(sources: readonly Source[]): AgentAction[] {
  return sources.map((s, i): AgentAction => ({ tag: 'call-tool', val: { id: `doc-${i}`, name: 'docs', args: JSON.stringify({ op: 'get', doc: s.doc }) } }));
}

/** …each result filling in its source's text (the first part, as much as one `get` returns); true when it was one. */
export function onDocRead(sources: Source[], r: WitToolResult): boolean {
  const m = /^doc-(\d+)$/.exec(r.id);
  if (!m) return false;
  const source = sources[Number(m[1])];
  const text = r.ok ? toolJson(r.output)?.text : undefined;
  if (source && typeof text === 'string') source.text = text;
  return true;
}

export function clipText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n… [${text.length - max} more characters]`;
}
