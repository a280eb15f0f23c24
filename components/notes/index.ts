/**
 * `notes`: an outline of notes (a tree) the agent builds up while it works — add, list, get, delete.
 * The tree lives in plain module globals: there is no save/restore code here, because the host checkpoints the
 * component's memory image after every call (DESIGN.md §4). That is exactly what this component exists to prove.
 */

interface Note {
  id: number;
  parent: number | null;
  title: string;
  body: string;
  children: number[];
}

type Args =
  | { op: 'add'; title: string; body?: string; parent?: number }
  | { op: 'list'; parent?: number }
  | { op: 'get'; id: number }
  | { op: 'delete'; id: number };

interface OutlineItem {
  id: number;
  title: string;
  children: OutlineItem[];
}

const notes = new Map<number, Note>();
const roots: number[] = [];
let nextId = 1;

const argsSchema = {
  type: 'object',
  oneOf: [
    { properties: { op: { const: 'add' }, title: { type: 'string' }, body: { type: 'string' }, parent: { type: 'integer' } }, required: ['op', 'title'] },
    { properties: { op: { const: 'list' }, parent: { type: 'integer' } }, required: ['op'] },
    { properties: { op: { const: 'get' }, id: { type: 'integer' } }, required: ['op', 'id'] },
    { properties: { op: { const: 'delete' }, id: { type: 'integer' } }, required: ['op', 'id'] },
  ],
};

export function describe() {
  return {
    name: 'notes',
    description:
      'An outline of notes. op "add" {title, body?, parent?} returns {id}; "list" {parent?} returns the outline ' +
      '(titles and ids, nested); "get" {id} returns the note with its children; "delete" {id} removes it and everything under it.',
    argsSchema: JSON.stringify(argsSchema),
    capabilities: [] as string[],
  };
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
    case 'delete': return { deleted: remove(find(args.id)) };
  }
}

function add(title: string, body: string, parent: number | null): { id: number } {
  const siblings = parent === null ? roots : find(parent).children;
  const id = nextId++;
  notes.set(id, { id, parent, title, body, children: [] });
  siblings.push(id);
  return { id };
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
  const int = (key: string, required: boolean) => {
    if (a[key] === undefined && !required) return;
    if (!Number.isInteger(a[key])) throw `"${key}" must be an integer.`;
  };
  switch (a.op) {
    case 'add':
      if (typeof a.title !== 'string' || a.title === '') throw '"add" needs a non-empty "title".';
      if (a.body !== undefined && typeof a.body !== 'string') throw '"body" must be a string.';
      int('parent', false);
      break;
    case 'list': int('parent', false); break;
    case 'get': case 'delete': int('id', true); break;
    default: throw `Unknown op ${JSON.stringify(a.op)}; use "add", "list", "get" or "delete".`;
  }
  return a as Args;
}
