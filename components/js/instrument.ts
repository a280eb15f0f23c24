/**
 * Rewrites sandboxed code before it runs: a call to the step counter at the top of every loop body and function body
 * (so an endless loop or recursion ends with a clear error instead of hanging the tool), and top-level let / const /
 * class turned into var, so that what one call declares is still there in the next (REPL semantics). Insertions never
 * add a newline, so line numbers in errors still match the model's code.
 */
import { parse } from 'acorn';

/** Counts a step (a loop iteration). */
export const TICK = '__ferry_tick__';
/** Counts a step and one level of call depth (a function entry); EXIT gives the level back. */
export const ENTER = '__ferry_enter__';
export const EXIT = '__ferry_exit__';
/** Bracket nesting beyond this is refused before parsing: the parser (QuickJS on a wasm stack) would overflow. */
const MAX_NESTING = 100;

interface Node {
  type: string;
  start: number;
  end: number;
  [key: string]: unknown;
}

interface Insertion {
  at: number;
  text: string;
  /** Characters of the original code replaced by `text` (0: a pure insertion). */
  remove: number;
  /** Openers of outer nodes go first, closers of inner nodes go first. */
  close: boolean;
  depth: number;
}

export function instrument(code: string): string {
  let program: Node;
  checkNesting(code);
  try {
    // preserveParens: an arrow's parenthesised body `(…)` keeps its parentheses inside the inserted block.
    program = parse(code, { ecmaVersion: 'latest', sourceType: 'script', preserveParens: true }) as unknown as Node;
  } catch (err) {
    throw new SyntaxError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  const edits: Insertion[] = [];
  const open = (at: number, text: string, depth: number) => edits.push({ at, text, remove: 0, close: false, depth });
  const close = (at: number, text: string, depth: number) => edits.push({ at, text, remove: 0, close: true, depth });

  for (const stmt of program.body as Node[]) {
    if (stmt.type === 'VariableDeclaration' && stmt.kind !== 'var') edits.push({ at: stmt.start, text: 'var', remove: String(stmt.kind).length, close: false, depth: -1 });
    if (stmt.type === 'ClassDeclaration' && stmt.id) {
      open(stmt.start, `var ${(stmt.id as Node & { name: string }).name} = `, -1);
      close(stmt.end, ';', -1);
    }
  }

  // An explicit stack, not recursion: a long expression is a deep tree, and deep recursion overflows the wasm stack.
  const stack: [Node, number][] = [[program, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    switch (node.type) {
      case 'ForStatement': case 'ForInStatement': case 'ForOfStatement': case 'WhileStatement': case 'DoWhileStatement': {
        const body = node.body as Node;
        if (body.type === 'BlockStatement') open(body.start + 1, `${TICK}();`, depth);
        else { open(body.start, `{${TICK}();`, depth); close(body.end, '}', depth); }
        break;
      }
      case 'FunctionDeclaration': case 'FunctionExpression': case 'ArrowFunctionExpression': {
        // Deep recursion would overflow the engine's wasm stack (a trap that kills the instance), so calls are
        // counted in and out: the body runs inside try/finally.
        const body = node.body as Node;
        if (body.type === 'BlockStatement') {
          // After the directive prologue ("use strict"), so the function keeps its strictness.
          const stmts = body.body as (Node & { directive?: string })[];
          let at = body.start + 1;
          for (const s of stmts) { if (s.directive === undefined) break; at = s.end; }
          open(at, `${ENTER}();try{`, depth);
          close(body.end - 1, `}finally{${EXIT}()}`, depth);
        } else {
          open(body.start, `{${ENTER}();try{return `, depth);
          close(body.end, `}finally{${EXIT}()}}`, depth);
        }
        break;
      }
    }
    for (const key of Object.keys(node)) {
      const value = node[key];
      if (Array.isArray(value)) { for (const v of value) if (isNode(v)) stack.push([v, depth + 1]); }
      else if (isNode(value)) stack.push([value, depth + 1]);
    }
  }
  return apply(code, edits);
}

/** A rough scan (strings and comments count too, so it errs on the side of refusing). */
function checkNesting(code: string): void {
  let depth = 0;
  for (const c of code) {
    if (c === '(' || c === '[' || c === '{') { if (++depth > MAX_NESTING) throw new Error(`the code nests brackets more than ${MAX_NESTING} deep`); }
    else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1);
  }
}

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && typeof (v as Node).type === 'string' && typeof (v as Node).start === 'number';
}

function apply(code: string, edits: Insertion[]): string {
  const sorted = edits.sort((a, b) =>
    a.at - b.at || (a.close === b.close ? (a.close ? b.depth - a.depth : a.depth - b.depth) : a.close ? -1 : 1));
  let out = '';
  let pos = 0;
  for (const e of sorted) {
    out += code.slice(pos, e.at) + e.text;
    pos = Math.max(pos, e.at + e.remove);
  }
  return out + code.slice(pos);
}
