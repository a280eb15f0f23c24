import { FerryError } from '../errors.ts';

/**
 * GBNF (llama.cpp's grammar format) parsed and matched the way llama.cpp's llama-grammar.cpp does it, for engines
 * that pick tokens outside llama.cpp's samplers (the CPU engine in WebAssembly reads the logits and picks itself).
 * The parser writes the same rules (repetitions rewritten into helper rules, the same limits, left
 * recursion refused); the matcher keeps the same set of pushdown stacks, advanced one code point at a time, and
 * judges a token's bytes as llama.cpp's grammar sampler does, a trailing partial UTF-8 sequence included. So a
 * greedy pick over the allowed tokens equals llama.cpp's grammar sampler followed by its greedy sampler.
 *
 * Token references (`<…>`, `!<…>`) are not supported: they need the model's vocabulary.
 */

const enum Kind {
  End,
  Alt,
  RuleRef,
  Char,
  CharNot,
  CharRangeUpper,
  CharAlt,
  CharAny,
}

/** llama.cpp's MAX_REPETITION_THRESHOLD: bounds the rules a repetition may write. */
const MAX_REPETITIONS = 2000;

/** A parsed grammar: rules as flat element arrays (one rule = alternates separated by Alt, closed by End). */
export class GbnfGrammar {
  readonly #alternates: number[][] = [];

  private constructor(
    /** Element kinds and values of all rules, one after another; a position in a rule is an index here. */
    readonly kinds: Uint8Array,
    readonly values: Uint32Array,
    /** Where each rule starts. */
    readonly starts: readonly number[],
    readonly root: number,
  ) {}

  /** Parses GBNF text; throws FerryError('llm/bad-grammar') saying what is wrong and where. */
  static parse(text: string): GbnfGrammar {
    if (typeof text !== 'string') throw new FerryError('llm/bad-grammar', 'A GBNF grammar must be text.');
    const parser = new Parser(text);
    parser.parse();
    const names = [...parser.symbols.entries()];
    const root = parser.symbols.get('root');
    if (root === undefined || parser.rules[root] === undefined) {
      throw new FerryError('llm/bad-grammar', 'The grammar has no rule named "root"; it is where generation starts (root ::= …).');
    }
    for (const [name, id] of names) {
      if (parser.rules[id] === undefined) throw new FerryError('llm/bad-grammar', `The grammar refers to rule "${name}", which it does not define.`);
    }
    const starts: number[] = [];
    let size = 0;
    for (const rule of parser.rules) {
      starts.push(size);
      size += rule!.length;
    }
    const kinds = new Uint8Array(size);
    const values = new Uint32Array(size);
    parser.rules.forEach((rule, i) => rule!.forEach(([kind, value], j) => ((kinds[starts[i]! + j] = kind), (values[starts[i]! + j] = value))));
    const grammar = new GbnfGrammar(kinds, values, starts, root);
    const recursive = grammar.#leftRecursive();
    if (recursive !== undefined) {
      const name = names.find(([, id]) => id === recursive)?.[0] ?? String(recursive);
      throw new FerryError('llm/bad-grammar', `The grammar is left-recursive at rule "${name}" (a rule can reach itself before reading a character); rewrite it with repetition (x*, x+).`);
    }
    return grammar;
  }

  /** llama_grammar_detect_left_recursion: the first rule found that reaches itself without consuming input. */
  #leftRecursive(): number | undefined {
    const n = this.starts.length;
    const visited = new Array<boolean>(n).fill(false);
    const inProgress = new Array<boolean>(n).fill(false);
    const mayBeEmpty = new Array<boolean>(n).fill(false);
    const detect = (rule: number): number | undefined => {
      if (inProgress[rule]) return rule;
      inProgress[rule] = true;
      const start = this.starts[rule]!;
      let atStart = true;
      for (let i = start; ; i++) {
        if (this.isEnd(i)) {
          if (atStart) {
            mayBeEmpty[rule] = true;
            break;
          }
          atStart = true;
        } else atStart = false;
        if (this.kinds[i] === Kind.End) break;
      }
      let recurse = true;
      for (let i = start; ; i++) {
        const kind = this.kinds[i]!;
        if (kind === Kind.RuleRef && recurse) {
          const found = detect(this.values[i]!);
          if (found !== undefined) return found;
          if (!mayBeEmpty[this.values[i]!]) recurse = false;
        } else recurse = this.isEnd(i);
        if (kind === Kind.End) break;
      }
      inProgress[rule] = false;
      visited[rule] = true;
      return undefined;
    };
    for (let rule = 0; rule < n; rule++) {
      if (visited[rule]) continue;
      const found = detect(rule);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** Whether `pos` ends an alternate (so a stack drops it). */
  isEnd(pos: number): boolean {
    const kind = this.kinds[pos];
    return kind === Kind.End || kind === Kind.Alt;
  }

  /** The positions where each alternate of `rule` starts. */
  alternates(rule: number): readonly number[] {
    let out = this.#alternates[rule];
    if (!out) {
      out = [];
      let pos = this.starts[rule]!;
      for (;;) {
        out.push(pos);
        while (!this.isEnd(pos)) pos++;
        if (this.kinds[pos] === Kind.End) break;
        pos++;
      }
      this.#alternates[rule] = out;
    }
    return out;
  }
}

// ---- Parsing (llama_grammar_parser), over code points so that line and column can be reported.

type Element = [Kind, number];

function isWordChar(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2d || (c >= 0x30 && c <= 0x39));
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

class Parser {
  readonly symbols = new Map<string, number>();
  readonly rules: (Element[] | undefined)[] = [];
  readonly #src: number[];
  readonly #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text;
    this.#src = Array.from(text, (ch) => ch.codePointAt(0)!);
  }

  parse(): void {
    this.#space(true);
    while (this.#at() !== undefined) this.#rule();
    if (this.rules.length === 0) throw this.#error('The grammar is empty: it needs at least "root ::= …"');
  }

  #at(offset = 0): number | undefined {
    return this.#src[this.#pos + offset];
  }

  #is(ch: string, offset = 0): boolean {
    return this.#at(offset) === ch.codePointAt(0);
  }

  #error(what: string): FerryError {
    const before = this.#src.slice(0, this.#pos);
    const line = before.filter((c) => c === 0x0a).length + 1;
    const column = this.#pos - before.lastIndexOf(0x0a);
    const near = String.fromCodePoint(...this.#src.slice(this.#pos, this.#pos + 24)).split('\n')[0];
    const where = this.#pos >= this.#src.length ? 'at the end of the grammar' : `at line ${line}, column ${column} (near ${JSON.stringify(near)})`;
    return new FerryError('llm/bad-grammar', `Invalid GBNF grammar: ${what} ${where}.`, { details: { line, column, grammar: this.#text.slice(0, 2000) } });
  }

  #symbol(name: string): number {
    let id = this.symbols.get(name);
    if (id === undefined) {
      id = this.symbols.size;
      this.symbols.set(name, id);
    }
    return id;
  }

  /** A fresh helper rule (its name has '_', which no written name can have). */
  #generated(base: string): number {
    const id = this.symbols.size;
    this.symbols.set(`${base}_${id}`, id);
    return id;
  }

  #addRule(id: number, rule: Element[]): void {
    while (this.rules.length <= id) this.rules.push(undefined);
    this.rules[id] = rule;
  }

  #space(newlineOk: boolean): void {
    for (;;) {
      const c = this.#at();
      if (c === 0x23) {
        while (this.#at() !== undefined && !this.#is('\r') && !this.#is('\n')) this.#pos++;
      } else if (c === 0x20 || c === 0x09 || (newlineOk && (c === 0x0d || c === 0x0a))) this.#pos++;
      else return;
    }
  }

  #name(): string {
    const start = this.#pos;
    while (isWordChar(this.#at())) this.#pos++;
    if (this.#pos === start) throw this.#error('expected a rule name (letters, digits, -)');
    return String.fromCodePoint(...this.#src.slice(start, this.#pos));
  }

  #int(): number {
    const start = this.#pos;
    while (isDigit(this.#at())) this.#pos++;
    if (this.#pos === start) throw this.#error('expected an integer');
    return Number(String.fromCodePoint(...this.#src.slice(start, this.#pos)));
  }

  #hex(size: number): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      const c = this.#at();
      const digit = c === undefined ? NaN : parseInt(String.fromCodePoint(c), 16);
      if (Number.isNaN(digit)) throw this.#error(`expected ${size} hex digits`);
      value = value * 16 + digit;
      this.#pos++;
    }
    return value;
  }

  #char(): number {
    const c = this.#at();
    if (c === undefined) throw this.#error('unexpected end of input');
    this.#pos++;
    if (c !== 0x5c) return c;
    const escape = this.#at();
    this.#pos++;
    switch (escape === undefined ? '' : String.fromCodePoint(escape)) {
      case 'x': return this.#hex(2);
      case 'u': return this.#hex(4);
      case 'U': return this.#hex(8);
      case 't': return 0x09;
      case 'r': return 0x0d;
      case 'n': return 0x0a;
      case '\\': case '"': case '[': case ']': case '-': return escape!;
      default:
        this.#pos -= 2;
        throw this.#error('unknown escape (use \\n \\r \\t \\\\ \\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH)');
    }
  }

  #rule(): void {
    const name = this.#name();
    this.#space(false);
    const id = this.#symbol(name);
    if (!(this.#is(':') && this.#is(':', 1) && this.#is('=', 2))) throw this.#error(`expected ::= after the rule name "${name}"`);
    this.#pos += 3;
    this.#space(true);
    this.#alternates(name, id, false);
    if (this.#is('\r')) this.#pos += this.#is('\n', 1) ? 2 : 1;
    else if (this.#is('\n')) this.#pos++;
    else if (this.#at() !== undefined) throw this.#error('expected a newline or the end of the grammar');
    this.#space(true);
  }

  #alternates(name: string, id: number, nested: boolean): void {
    const rule: Element[] = [];
    this.#sequence(name, rule, nested);
    while (this.#is('|')) {
      rule.push([Kind.Alt, 0]);
      this.#pos++;
      this.#space(true);
      this.#sequence(name, rule, nested);
    }
    rule.push([Kind.End, 0]);
    this.#addRule(id, rule);
  }

  #sequence(name: string, rule: Element[], nested: boolean): void {
    let lastStart = rule.length;
    let previousRules = 1;

    // S{m,n} → S (m times) then n−m nested optional rules S'(x) ::= S S'(x−1) | ; S{m,} → S (m times) S', S' ::= S S' |
    const repeat = (min: number, max: number | undefined) => {
      if (lastStart === rule.length) throw this.#error('expected something before */+/?/{ to repeat');
      const previous = rule.slice(lastStart);
      const total = max !== undefined && max > 0 ? max : min > 0 ? min : 1;
      if (previousRules * total > MAX_REPETITIONS) throw this.#error(`too many repetitions (more than ${MAX_REPETITIONS} rules would be written)`);
      if (min === 0) rule.length = lastStart;
      else for (let i = 1; i < min; i++) rule.push(...previous);
      let lastRec = 0;
      const optional = max === undefined ? 1 : max - min;
      for (let i = 0; i < optional; i++) {
        const recId = this.#generated(name);
        const rec: Element[] = [...previous];
        if (i > 0 || max === undefined) rec.push([Kind.RuleRef, max === undefined ? recId : lastRec]);
        rec.push([Kind.Alt, 0], [Kind.End, 0]);
        this.#addRule(recId, rec);
        lastRec = recId;
      }
      if (optional > 0) rule.push([Kind.RuleRef, lastRec]);
      previousRules *= total;
    };

    for (;;) {
      const c = this.#at();
      if (c === undefined) return;
      if (this.#is('"')) {
        this.#pos++;
        lastStart = rule.length;
        previousRules = 1;
        while (!this.#is('"')) {
          if (this.#at() === undefined) throw this.#error('unterminated string literal');
          rule.push([Kind.Char, this.#char()]);
        }
        this.#pos++;
        this.#space(nested);
      } else if (this.#is('[')) {
        this.#pos++;
        let start = Kind.Char;
        if (this.#is('^')) {
          this.#pos++;
          start = Kind.CharNot;
        }
        lastStart = rule.length;
        previousRules = 1;
        while (!this.#is(']')) {
          if (this.#at() === undefined) throw this.#error('unterminated character class');
          rule.push([lastStart < rule.length ? Kind.CharAlt : start, this.#char()]);
          if (this.#is('-') && !this.#is(']', 1)) {
            if (this.#at(1) === undefined) throw this.#error('unterminated character class');
            this.#pos++;
            rule.push([Kind.CharRangeUpper, this.#char()]);
          }
        }
        this.#pos++;
        this.#space(nested);
      } else if (this.#is('<') || this.#is('!')) {
        throw this.#error('token references (<…>) are not supported here; write the text instead');
      } else if (isWordChar(c)) {
        const ref = this.#symbol(this.#name());
        this.#space(nested);
        lastStart = rule.length;
        previousRules = 1;
        rule.push([Kind.RuleRef, ref]);
      } else if (this.#is('(')) {
        this.#pos++;
        this.#space(true);
        const before = this.symbols.size;
        const sub = this.#generated(name);
        this.#alternates(name, sub, true);
        previousRules = Math.max(1, this.symbols.size - before);
        lastStart = rule.length;
        rule.push([Kind.RuleRef, sub]);
        if (!this.#is(')')) throw this.#error("expected ')'");
        this.#pos++;
        this.#space(nested);
      } else if (this.#is('.')) {
        lastStart = rule.length;
        previousRules = 1;
        rule.push([Kind.CharAny, 0]);
        this.#pos++;
        this.#space(nested);
      } else if (this.#is('*') || this.#is('+') || this.#is('?')) {
        const op = this.#at();
        this.#pos++;
        this.#space(nested);
        if (op === 0x2a) repeat(0, undefined);
        else if (op === 0x2b) repeat(1, undefined);
        else repeat(0, 1);
      } else if (this.#is('{')) {
        this.#pos++;
        this.#space(nested);
        if (!isDigit(this.#at())) throw this.#error("expected a number after '{'");
        const min = this.#int();
        this.#space(nested);
        let max: number | undefined;
        if (this.#is('}')) {
          max = min;
        } else if (this.#is(',')) {
          this.#pos++;
          this.#space(nested);
          if (isDigit(this.#at())) {
            max = this.#int();
            this.#space(nested);
          }
          if (!this.#is('}')) throw this.#error("expected '}'");
        } else throw this.#error("expected ',' or '}'");
        this.#pos++;
        this.#space(nested);
        if (min > MAX_REPETITIONS) throw this.#error(`a repetition count over ${MAX_REPETITIONS}`);
        if (max !== undefined && max < min) throw this.#error(`a repetition {${min},${max}} whose maximum is below its minimum`);
        // llama.cpp treats an upper bound over its threshold as none.
        repeat(min, max !== undefined && max > MAX_REPETITIONS ? undefined : max);
      } else return;
    }
  }
}

// ---- Matching (llama_grammar_advance_stack, _accept, _reject_candidates).

/** A pushdown stack, hash-consed: equal stacks are the same object, so sets of stacks compare by identity. */
interface Stack {
  readonly top: number;
  readonly rest: Stack | null;
  readonly id: number;
}

/** A UTF-8 sequence cut short at a token's end (llama_partial_utf8): its value so far and the bytes it still needs. */
interface PartialUtf8 {
  readonly value: number;
  /** 0: none pending; −1: the bytes were not valid UTF-8. */
  readonly remain: number;
}

const NO_PARTIAL: PartialUtf8 = { value: 0, remain: 0 };
const UTF8_LENGTH = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4];

/** llama.cpp's decode_utf8 over a token's bytes (which stop at the first NUL, as its C strings do). */
function decodeUtf8(bytes: Uint8Array, start: PartialUtf8): { codePoints: number[]; partial: PartialUtf8 } {
  const codePoints: number[] = [];
  let pos = 0;
  const at = () => (pos < bytes.length ? bytes[pos]! : 0);
  let value = start.value;
  let remain = start.remain;
  while (at() !== 0 && remain > 0) {
    const next = at();
    if (next >> 6 !== 2) return { codePoints: [], partial: { value: 0, remain: -1 } };
    value = (value << 6) + (next & 0x3f);
    pos++;
    remain--;
  }
  if (start.remain > 0 && remain === 0) codePoints.push(value);
  while (at() !== 0) {
    const first = at();
    remain = UTF8_LENGTH[first >> 4]! - 1;
    if (remain < 0) return { codePoints: [], partial: { value: 0, remain } };
    value = first & ((1 << (7 - remain)) - 1);
    pos++;
    while (at() !== 0 && remain > 0) {
      value = (value << 6) + (at() & 0x3f);
      pos++;
      remain--;
    }
    if (remain === 0) codePoints.push(value);
  }
  return { codePoints, partial: { value, remain } };
}

/**
 * Where a grammar stands in a text: the set of stacks, each topped by the character element it expects next (an
 * empty stack: the grammar may end), and the partial UTF-8 sequence the last piece ended in.
 */
export class GbnfMatcher {
  readonly #grammar: GbnfGrammar;
  readonly #interned: Map<string, Stack>;
  #stacks: (Stack | null)[];
  #partial: PartialUtf8 = NO_PARTIAL;
  /** The last piece allowsPiece allowed in this state, and the state after it. */
  #allowed: { piece: Uint8Array; next: { stacks: (Stack | null)[]; partial: PartialUtf8 } } | undefined;

  constructor(grammar: GbnfGrammar) {
    this.#grammar = grammar;
    this.#interned = new Map();
    const out = new Set<Stack | null>();
    for (const alternate of grammar.alternates(grammar.root)) this.#advance(grammar.isEnd(alternate) ? null : this.#push(null, alternate), out);
    this.#stacks = [...out];
  }

  /** Whether the text so far is a whole sentence of the grammar (llama.cpp then allows an end-of-generation token). */
  get canEnd(): boolean {
    return this.#stacks.includes(null);
  }

  /** Whether `text` can follow what was accepted (it is a prefix of some continuation). */
  allows(text: string): boolean {
    return this.#survivors(new TextEncoder().encode(text)) !== undefined;
  }

  /** Moves past `text`; throws FerryError('llm/bad-grammar') where the grammar does not allow it. */
  accept(text: string): void {
    this.acceptBytes(new TextEncoder().encode(text));
  }

  /**
   * Whether a token whose text is `piece` may come next, as llama.cpp's grammar sampler decides: an empty piece or one
   * starting with NUL never, one ending inside a UTF-8 sequence if that sequence can still become an allowed character.
   */
  allowsPiece(piece: Uint8Array): boolean {
    if (piece.length === 0 || piece[0] === 0) return false;
    const next = this.#survivors(piece);
    // The allowed piece is mostly the one accepted next: the state after it is kept for acceptBytes.
    if (next) this.#allowed = { piece, next };
    return next !== undefined;
  }

  /**
   * A test of a piece's first byte, false where no piece starting with it is allowed next (true: maybe; allowsPiece
   * decides), memoized for this state: it rejects most of a vocabulary without matching each piece. After a partial
   * character only continuation bytes may come; otherwise an ASCII byte must match some stack's character, and a
   * stray continuation byte or NUL never starts an allowed piece. Lead bytes of longer characters are left to allowsPiece.
   */
  firstByteTest(): (byte: number) => boolean {
    const stacks = this.#stacks;
    if (this.#partial.remain > 0) return (b) => b >> 6 === 2;
    const memo = new Int8Array(0x80).fill(-1);
    return (b) => {
      if (b >= 0xc0) return true;
      if (b === 0 || b >= 0x80) return false;
      if (memo[b] === -1) memo[b] = stacks.some((stack) => stack !== null && this.#matchChar(stack.top, b) >= 0) ? 1 : 0;
      return memo[b] === 1;
    };
  }

  /** Moves past a token's bytes (a trailing partial character is kept for the next piece). */
  acceptBytes(piece: Uint8Array): void {
    const next = this.#allowed?.piece === piece ? this.#allowed.next : this.#survivors(piece);
    this.#allowed = undefined;
    if (next === undefined) throw new FerryError('llm/bad-grammar', 'The text does not follow the grammar at this point.');
    this.#stacks = next.stacks;
    this.#partial = next.partial;
  }

  /** The stacks after `bytes`, or undefined when no stack allows them. */
  #survivors(bytes: Uint8Array): { stacks: (Stack | null)[]; partial: PartialUtf8 } | undefined {
    const { codePoints, partial } = decodeUtf8(bytes, this.#partial);
    if (partial.remain < 0) return undefined;
    let stacks = this.#stacks;
    for (const chr of codePoints) {
      const out = new Set<Stack | null>();
      for (const stack of stacks) this.#acceptChar(stack, chr, out);
      if (out.size === 0) return undefined;
      stacks = [...out];
    }
    if (partial.remain > 0 && !stacks.some((stack) => stack !== null && this.#matchPartial(stack.top, partial))) return undefined;
    return { stacks, partial };
  }

  #push(rest: Stack | null, top: number): Stack {
    const key = `${top},${rest?.id ?? -1}`;
    let stack = this.#interned.get(key);
    if (!stack) {
      stack = { top, rest, id: this.#interned.size };
      this.#interned.set(key, stack);
    }
    return stack;
  }

  /** llama_grammar_advance_stack: expands rule references until every stack is topped by a character element. */
  #advance(start: Stack | null, out: Set<Stack | null>): void {
    const g = this.#grammar;
    const todo: (Stack | null)[] = [start];
    const seen = new Set<Stack | null>();
    while (todo.length > 0) {
      const stack = todo.pop()!;
      if (seen.has(stack)) continue;
      seen.add(stack);
      if (stack === null) {
        out.add(null);
        continue;
      }
      const pos = stack.top;
      if (g.kinds[pos] !== Kind.RuleRef) {
        out.add(stack);
        continue;
      }
      for (const alternate of g.alternates(g.values[pos]!)) {
        let next = stack.rest;
        if (!g.isEnd(pos + 1)) next = this.#push(next, pos + 1);
        if (!g.isEnd(alternate)) next = this.#push(next, alternate);
        todo.push(next);
      }
    }
  }

  #acceptChar(stack: Stack | null, chr: number, out: Set<Stack | null>): void {
    if (stack === null) return;
    const after = this.#matchChar(stack.top, chr);
    if (after < 0) return;
    this.#advance(this.#grammar.isEnd(after) ? stack.rest : this.#push(stack.rest, after), out);
  }

  /** llama_grammar_match_char: the position after the character element at `pos` if `chr` matches it, else −1. */
  #matchChar(pos: number, chr: number): number {
    const { kinds, values } = this.#grammar;
    const positive = kinds[pos] === Kind.Char || kinds[pos] === Kind.CharAny;
    let found = false;
    do {
      if (kinds[pos + 1] === Kind.CharRangeUpper) {
        found ||= values[pos]! <= chr && chr <= values[pos + 1]!;
        pos += 2;
      } else if (kinds[pos] === Kind.CharAny) {
        found = true;
        pos += 1;
      } else {
        found ||= values[pos] === chr;
        pos += 1;
      }
    } while (kinds[pos] === Kind.CharAlt);
    return found === positive ? pos : -1;
  }

  /** llama_grammar_match_partial_char: whether some completion of `partial` can match the element at `pos`. */
  #matchPartial(pos: number, partial: PartialUtf8): boolean {
    const { kinds, values } = this.#grammar;
    const positive = kinds[pos] === Kind.Char || kinds[pos] === Kind.CharAny;
    const { value, remain } = partial;
    // Invalid, or a 7-bit character split over two bytes (overlong).
    if (remain < 0 || (remain === 1 && value < 2)) return false;
    let low = value * 2 ** (remain * 6);
    const high = low + 2 ** (remain * 6) - 1;
    if (low === 0) {
      if (remain === 2) low = 1 << 11;
      else if (remain === 3) low = 1 << 16;
    }
    do {
      if (kinds[pos + 1] === Kind.CharRangeUpper) {
        if (values[pos]! <= high && low <= values[pos + 1]!) return positive;
        pos += 2;
      } else if (kinds[pos] === Kind.CharAny) {
        return true;
      } else {
        if (low <= values[pos]! && values[pos]! <= high) return positive;
        pos += 1;
      }
    } while (kinds[pos] === Kind.CharAlt);
    return !positive;
  }
}

/** Parses `text` and returns a matcher at its start. */
export function gbnfMatcher(text: string): GbnfMatcher {
  return new GbnfMatcher(GbnfGrammar.parse(text));
}
