/**
 * `notes`: an outline of notes (a tree) the agent builds up while it works — add, list, get, update, render (as
 * Markdown), delete.
 * The tree lives in plain module globals: there is no save/restore code here, because the host checkpoints the
 * component's memory image after every call (DESIGN.md §4). That is exactly what this component exists to prove.
 */

import { notesSpec } from './spec.ts';

interface Note {
  id: number;
  parent: number | null;
  title: string;
  body: string;
  children: number[];
}

type Args =
  | { op: 'add'; title: string; body?: string; parent?: number }
  | { op: 'update'; id: number; title?: string; body?: string; append?: string }
  | { op: 'render'; id?: number }
  | { op: 'list'; parent?: number }
  | { op: 'get'; id: number }
  | { op: 'delete'; id: number };

interface OutlineItem {
  id: number;
  title: string;
  children: OutlineItem[];
}

/** Explicit limits: a runaway agent gets an error it can read, not an instance that runs out of memory. */
const MAX_NOTES = 10_000;
/** Outline levels; rendering and deleting walk the tree recursively, and deep recursion overflows the wasm stack. */
const MAX_DEPTH = 32;
const MAX_TITLE = 500;
const MAX_BODY = 1024 * 1024;
/** The most characters `render` returns. */
const MAX_RENDER = 64_000;

const notes = new Map<number, Note>();
const roots: number[] = [];
let nextId = 1;


export function describe() {
  return { name: notesSpec.name, description: notesSpec.description, argsSchema: JSON.stringify(notesSpec.parameters), capabilities: [] as string[] };
}

/** The ok value is JSON text; a thrown string becomes the WIT `err` — a message meant for the model. */
export function invoke(args: string): string {
  return JSON.stringify(run(parse(args)));
}

function run(args: Args): unknown {
  switch (args.op) {
    case 'add': return add(args.title, args.body ?? '', args.parent ?? null);
    case 'list': return args.parent === undefined ? roots.map(outline) : outline(find(args.parent).id).children;
    case 'get': return find(args.id);
    case 'update': return update(find(args.id), args);
    case 'render': return { markdown: clip(`${args.id === undefined ? roots.map((id) => render(id, 1)).join('\n\n') : render(find(args.id).id, 1)}\n`) };
    case 'delete': return { deleted: remove(find(args.id)) };
  }
}

function add(title: string, body: string, parent: number | null): { id: number } {
  if (notes.size >= MAX_NOTES) throw `The outline already holds ${MAX_NOTES} notes, the most it can; delete some first.`;
  let depth = 1;
  for (let p = parent; p !== null; p = find(p).parent) depth++;
  if (depth > MAX_DEPTH) throw `The outline may be at most ${MAX_DEPTH} levels deep; add the note higher up.`;
  const siblings = parent === null ? roots : find(parent).children;
  const id = nextId++;
  notes.set(id, { id, parent, title, body, children: [] });
  siblings.push(id);
  return { id };
}

function update(note: Note, args: { title?: string; body?: string; append?: string }): { id: number; title: string; characters: number } {
  const body = (args.body ?? note.body) + (args.append ?? '');
  if (body.length > MAX_BODY) throw `The body would be ${body.length} characters; a note holds at most ${MAX_BODY}.`;
  note.title = args.title ?? note.title;
  note.body = body;
  return { id: note.id, title: note.title, characters: note.body.length };
}

/** A subtree as Markdown: headings by depth (deeper than 6 becomes a bullet), then the body. */
function render(id: number, depth: number): string {
  const note = notes.get(id)!;
  const head = depth <= 6 ? `${'#'.repeat(depth)} ${note.title}` : `- **${note.title}**`;
  const parts = [head, ...(note.body === '' ? [] : [note.body]), ...note.children.map((c) => render(c, depth + 1))];
  return parts.join('\n\n');
}

function clip(text: string): string {
  return text.length <= MAX_RENDER ? text : `${text.slice(0, MAX_RENDER)}\n… [${text.length - MAX_RENDER} more characters; render one subtree with {"op":"render","id":…}]`;
}

function outline(id: number): OutlineItem {
  const note = notes.get(id)!;
  return { id, title: note.title, children: note.children.map(outline) };
}

function remove(note: Note): number {
  const siblings = note.parent === null ? roots : notes.get(note.parent)!.children;
  siblings.splice(siblings.indexOf(note.id), 1);
  let count = 0;
  const drop = (id: number) => {
    const n = notes.get(id)!;
    n.children.forEach(drop);
    notes.delete(id);
    count++;
  };
  drop(note.id);
  return count;
}

function find(id: number): Note {
  const note = notes.get(id);
  if (!note) throw `No note with id ${id}; call {"op":"list"} to see the outline.`;
  return note;
}

function parse(text: string): Args {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw 'The arguments are not valid JSON.';
  }
  if (typeof value !== 'object' || value === null) throw 'The arguments must be a JSON object with an "op".';
  const a = value as Record<string, unknown>;
  const checkString = (key: string, max: number) => {
    const v = a[key];
    if (v === undefined) return;
    if (typeof v !== 'string') throw `"${key}" must be a string.`;
    if (v.length > max) throw `"${key}" is ${v.length} characters long; at most ${max} are allowed.`;
  };
  const int = (key: string, required: boolean) => {
    if (a[key] === undefined && !required) return;
    if (!Number.isInteger(a[key])) throw `"${key}" must be an integer.`;
  };
  switch (a.op) {
    case 'add':
      if (typeof a.title !== 'string' || a.title === '') throw '"add" needs a non-empty "title".';
      checkString('title', MAX_TITLE);
      checkString('body', MAX_BODY);
      int('parent', false);
      break;
    case 'update':
      int('id', true);
      if (a.title !== undefined && (typeof a.title !== 'string' || a.title === '')) throw '"title" must be a non-empty string.';
      checkString('title', MAX_TITLE);
      checkString('body', MAX_BODY);
      checkString('append', MAX_BODY);
      if (a.title === undefined && a.body === undefined && a.append === undefined) throw '"update" needs "title", "body" or "append".';
      break;
    case 'render': int('id', false); break;
    case 'list': int('parent', false); break;
    case 'get': case 'delete': int('id', true); break;
    default: throw `Unknown op ${JSON.stringify(a.op)}; use "add", "list", "get", "update", "render" or "delete".`;
  }
  return a as Args;
}
