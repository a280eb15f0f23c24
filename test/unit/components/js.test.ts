/** The `js` tool, built and called as a component: values, console, persistence, errors, the step budget. */
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_TIMEOUT, directTool, errorOf } from './built.ts';

let js: Awaited<ReturnType<typeof directTool>>;

beforeAll(async () => {
  js = await directTool('js');
}, BUILD_TIMEOUT);

const run = (code: string, budget?: number) => js.call({ op: 'eval', code, ...(budget ? { budget } : {}) }) as { result: string; console: string[]; steps: number };

describe('js tool', () => {
  it('returns the last value and the console output', () => {
    const out = run('const xs = [3, 1, 2].sort(); console.log("sorted", xs); console.warn({ n: xs.length }); xs.map((x) => x * 10)');
    expect(out.result).toBe('[10, 20, 30]');
    expect(out.console).toEqual(['sorted [1, 2, 3]', '[warn] { n: 3 }']);
    expect(run('({ a: 1, b: "two", c: [new Map([[1, 2]])], d: undefined })').result).toBe('{ a: 1, b: "two", c: [Map(1) {1 => 2}], d: undefined }');
    expect(run('"plain string"').result).toBe('plain string');
  });

  it('keeps declarations between calls, lists them, and forgets them on reset', () => {
    run('let total = 40; function inc(n) { return n + 1 } class Box { constructor(v) { this.v = v } }');
    expect(run('inc(total) + new Box(1).v').result).toBe('42');
    // Top-level let can be declared again, as in a REPL.
    expect(run('let total = 1; total').result).toBe('1');
    const { globals } = js.call({ op: 'globals' }) as { globals: { name: string }[] };
    expect(globals.map((g) => g.name)).toEqual(expect.arrayContaining(['total', 'inc', 'Box', 'xs']));
    expect(js.call({ op: 'reset' })).toMatchObject({ forgotten: expect.arrayContaining(['total', 'inc']) });
    expect(run('typeof inc').result).toBe('undefined');
  });

  it('reports errors with their line, plus the console output so far', () => {
    const err = errorOf(() => run('console.log("before");\nnull.x'));
    expect(err).toMatch(/^Uncaught TypeError: .* \(line 2\)/);
    expect(err).toContain('console output:\nbefore');
    expect(errorOf(() => run('let = ;'))).toMatch(/^SyntaxError: .*\(1:\d+\)/);
    expect(errorOf(() => run('throw "plain"'))).toBe('Uncaught "plain"');
  });

  it('stops endless loops and recursion with a step budget, even when the code catches', () => {
    expect(errorOf(() => run('let n = 0; while (true) n++;'))).toMatch(/used its budget of 1000000 steps/);
    expect(errorOf(() => run('for (;;) { try { for (;;) {} } catch (e) {} }', 5000))).toMatch(/budget of 5000 steps/);
    // Recursion stops at the sandbox's depth limit, catchably, long before the engine's stack would overflow
    // (which would trap and kill the instance): so it can be hit again and again.
    for (let i = 0; i < 3; i++) expect(errorOf(() => run('const f = (n) => f(n + 1); f(0)', 50_000_000))).toMatch(/^Uncaught RangeError: Maximum call depth of 400 exceeded/);
    expect(run('function down(n) { return n === 0 ? 0 : 1 + down(n - 1) } down(300)').result).toBe('300');
    expect(run('let caught = 0; function r() { try { r() } catch (e) { caught++ } } r(); caught > 0').result).toBe('true');
    expect(errorOf(() => run('['.repeat(150) + ']'.repeat(150)))).toMatch(/nests brackets more than 100 deep/);
    expect(run('let s = 0; for (let i = 0; i < 1000; i++) s += i; s', 2000)).toMatchObject({ result: '499500', steps: 1000 });
  });

  it('has no clock, says so, and the instance survives', () => {
    expect(errorOf(() => run('Date.now()'))).toMatch(/no clock/);
    expect(errorOf(() => run('new Date()'))).toMatch(/no clock/);
    expect(run('new Date("2024-02-03T00:00:00Z").getUTCDate()').result).toBe('3');
    expect(run('Promise.resolve(1)').result).toMatch(/not awaited/);
  });

  it('answers bad arguments with messages for the model', () => {
    expect(errorOf(() => js.raw('[]'))).toMatch(/must be a JSON object/);
    expect(errorOf(() => js.call({ op: 'run', code: '1' }))).toMatch(/Unknown op "run"/);
    expect(errorOf(() => js.call({ op: 'eval' }))).toBe('"code" must be a string.');
    expect(errorOf(() => js.call({ op: 'eval', code: '1', budget: 0 }))).toMatch(/"budget" must be between 1 and 50000000/);
    expect(errorOf(() => js.call({ op: 'eval', code: '__ferry_tick__ = null' }))).toMatch(/reserved/);
    expect(errorOf(() => js.call({ op: 'eval', code: 'x'.repeat(64 * 1024 + 1) }))).toMatch(/at most 65536/);
    expect(run('1 + 1').result).toBe('2');
  });
});
