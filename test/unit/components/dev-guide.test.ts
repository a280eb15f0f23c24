/**
 * The `dev-guide` agent in the real action loop with the real workspace tool and a scripted engine (tests of agent
 * logic only): it reads the code, proposes a diff, the agent finds that the first diff does not apply and sends it
 * back, and the corrected diff — checked by a dry run — applies to the workspace.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AgentLoop, type ToolHost } from '../../../src/core/runtime/index.ts';
import { lastText, ScriptedEngine, toolCall } from '../../support/scripted-engine.ts';
import { agent, BUILD_TIMEOUT, collect, replies, tool, toolCalls } from './built.ts';

const MATH = 'export function add(a: number, b: number): number {\n  return a - b;\n}\n\nexport function double(n: number): number {\n  return add(n, n);\n}\n';
let workspace: ToolHost;
let js: ToolHost;

beforeAll(async () => {
  [workspace, js] = await Promise.all([tool('workspace'), tool('js')]);
  await workspace.invoke(JSON.stringify({ op: 'write', path: 'src/math.ts', content: MATH }));
  await workspace.invoke(JSON.stringify({ op: 'write', path: 'test/math.test.ts', content: "import { double } from '../src/math';\nexpect(double(2)).toBe(4);\n" }));
}, BUILD_TIMEOUT);

const WRONG_DIFF = '```diff\n--- a/src/math.ts\n+++ b/src/math.ts\n@@ -1,3 +1,3 @@\n export function add(a, b) {\n-  return a - b;\n+  return a + b;\n }\n```';
const RIGHT_DIFF = '```diff\n--- a/src/math.ts\n+++ b/src/math.ts\n@@ -1,3 +1,3 @@\n export function add(a: number, b: number): number {\n-  return a - b;\n+  return a + b;\n }\n```';

describe('dev-guide agent', () => {
  it('reads files, proposes a diff, and only replies once its diff applies', async () => {
    const engine = new ScriptedEngine((messages, i) => {
      const last = lastText(messages);
      switch (i) {
        case 0: return toolCall('workspace', { op: 'list' });
        case 1: return last.includes('src/math.ts') ? `${toolCall('workspace', { op: 'grep', pattern: 'add(' })}\n${toolCall('workspace', { op: 'read', path: 'src/math.ts' })}` : `no listing: ${last}`;
        case 2: return `\`add\` subtracts instead of adding, so \`double(2)\` is 0 and the test fails.\n\n${WRONG_DIFF}`;
        case 3: return last.includes('does not apply') ? `${toolCall('workspace', { op: 'read', path: 'src/math.ts', offset: 1, limit: 3 })}` : `no failure fed back: ${last}`;
        case 4: return `\`add\` in src/math.ts line 2 subtracts; fix:\n\n${RIGHT_DIFF}`;
        default: throw new Error(`unexpected request ${i}`);
      }
    });
    const loop = new AgentLoop({ agent: await agent('dev-guide'), tools: [workspace, js], engine });
    const events = await collect(loop, { type: 'start', task: 'Why does test/math.test.ts fail?' });

    const [reply] = replies(events);
    expect(replies(events)).toHaveLength(1);
    expect(reply).toContain(RIGHT_DIFF);
    expect(reply).toContain('✓ Checked: the proposed diff applies cleanly to the workspace.');
    // The model's reads, then the agent's own dry runs: first the wrong diff, then the right one.
    const calls = toolCalls(events);
    expect(calls.map((c) => `${c.tool}:${c.args.op}${c.args.dry_run ? ':dry' : ''}`)).toEqual([
      'workspace:list', 'workspace:grep', 'workspace:read', 'workspace:patch:dry', 'workspace:read', 'workspace:patch:dry',
    ]);
    const results = events.filter((e) => e.type === 'tool-result');
    expect(results[3]).toMatchObject({ ok: false, output: expect.stringMatching(/Hunk 1 of the diff for "src\/math.ts".*does not match/s) });
    expect(results[5]).toMatchObject({ ok: true });
    // The model saw why its diff failed.
    expect(engine.requests[3]!.at(-1)!.content).toMatch(/^Your proposed diff does not apply to the workspace:\nHunk 1/);

    // Nothing was applied by the agent: the dry runs left the file alone.
    expect(JSON.parse((await workspace.invoke(JSON.stringify({ op: 'read', path: 'src/math.ts' }))).output)).toMatchObject({ content: MATH.trimEnd() });
    // The proposed diff applies, and fixes the bug.
    const diff = /```diff\n([\s\S]*?)```/.exec(reply!)![1]!;
    expect(await workspace.invoke(JSON.stringify({ op: 'patch', diff }))).toMatchObject({ ok: true });
    const fixed = JSON.parse((await workspace.invoke(JSON.stringify({ op: 'read', path: 'src/math.ts', offset: 2, limit: 1 }))).output) as { content: string };
    expect(fixed.content).toBe('  return a + b;');
  });

  it('answers without a diff directly, with no check', async () => {
    const engine = ScriptedEngine.sequence([toolCall('workspace', { op: 'grep', pattern: 'double' }), 'double() is defined in src/math.ts (line 5) and used by the test.']);
    const loop = new AgentLoop({ agent: await agent('dev-guide'), tools: [workspace, js], engine });
    const events = await collect(loop, { type: 'start', task: 'Where is double defined?' });
    expect(replies(events)).toEqual(['double() is defined in src/math.ts (line 5) and used by the test.']);
    expect(toolCalls(events).map((c) => c.args.op)).toEqual(['grep']);
  });
});
