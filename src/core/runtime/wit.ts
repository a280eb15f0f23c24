/**
 * The WIT types of components/wit/types.wit as the jco glue lifts and lowers them: records with camelCase fields,
 * variants as `{ tag, val }` with the WIT (kebab-case) case names, `option<T>` as `T | undefined`. Plus the checks
 * that turn what a component returned into these types — a component is untrusted code, so its output is
 * validated like any other outside bytes.
 */
import { FerryError } from '../errors.ts';
import type { ComponentInstance } from './instance.ts';

export interface WitMessage {
  role: string;
  content: string;
}

export interface GenerateParams {
  maxTokens?: number | undefined;
  temperature?: number | undefined;
  stop: string[];
}

export interface Generation {
  text: string;
  /** "stop" | "length" | "cancelled" */
  finishReason: string;
}

export interface WitToolCall {
  id: string;
  name: string;
  /** JSON text. */
  args: string;
}

export interface WitToolResult {
  id: string;
  name: string;
  ok: boolean;
  output: string;
}

export interface SubTask {
  id: string;
  task: string;
}

export interface ChildResult {
  id: string;
  ok: boolean;
  output: string;
}

export type AgentEvent =
  | { tag: 'start'; val: string }
  | { tag: 'user-message'; val: string }
  | { tag: 'generation-result'; val: Generation }
  | { tag: 'tool-result'; val: WitToolResult }
  | { tag: 'child-results'; val: ChildResult[] };

export type AgentAction =
  | { tag: 'generate'; val: { messages: WitMessage[]; params: GenerateParams } }
  | { tag: 'call-tool'; val: WitToolCall }
  | { tag: 'reply'; val: string }
  | { tag: 'fork-children'; val: SubTask[] }
  | { tag: 'done'; val: string };

export interface AgentInfo {
  name: string;
  description: string;
  tools: string[];
}

export interface ToolInfo {
  name: string;
  description: string;
  /** JSON Schema (as JSON text) of the argument object. */
  argsSchema: string;
  capabilities: string[];
}

/** An agent as the loop drives it: the `agent` world's two exports. */
export interface Agent {
  describe(): AgentInfo;
  step(event: AgentEvent): AgentAction[];
}

/** Limits on what one component call may return; beyond them the output is a runaway, not a result. */
export const MAX_ACTIONS_PER_STEP = 64;
export const MAX_TEXT_BYTES = 1 << 20;

/** The agent exports of a component instance, with every returned value checked. */
export function agentOf(instance: ComponentInstance): Agent {
  const name = instance.component.manifest.name;
  const describe = exportedFunction(instance, 'describe');
  const step = exportedFunction(instance, 'step');
  return {
    describe: () => checkAgentInfo(describe(), name),
    step: (event) => checkActions(step(event), name),
  };
}

/** The tool exports of a component instance: describe() checked; invoke returns the ok text or throws the err text. */
export function toolExportsOf(instance: ComponentInstance): { describe(): ToolInfo; invoke(args: string): string } {
  const name = instance.component.manifest.name;
  const describe = exportedFunction(instance, 'describe');
  const invoke = exportedFunction(instance, 'invoke');
  return {
    describe: () => checkToolInfo(describe(), name),
    invoke: (args) => {
      const out = invoke(args);
      if (typeof out !== 'string') throw badOutput(name, 'invoke() returned something other than a string');
      return out;
    },
  };
}

/** The err payload of a WIT `result` as jco throws it (a ComponentError with `payload`), or undefined for a trap. */
export function resultError(err: unknown): string | undefined {
  const payload = (err as { payload?: unknown } | null)?.payload;
  return typeof payload === 'string' ? payload : undefined;
}

function exportedFunction(instance: ComponentInstance, name: string): (...args: unknown[]) => unknown {
  const fn = instance.exports[name];
  if (typeof fn !== 'function') {
    throw new FerryError('component/wrong-world', `Component "${instance.component.manifest.name}" (world ${instance.component.manifest.world}) exports no ${name}(); it is not built for this role.`);
  }
  return fn as (...args: unknown[]) => unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, component: string, what: string): string {
  if (typeof v !== 'string') throw badOutput(component, `${what} is not a string`);
  if (v.length > MAX_TEXT_BYTES) throw badOutput(component, `${what} is longer than ${MAX_TEXT_BYTES} characters`);
  return v;
}

function strs(v: unknown, component: string, what: string): string[] {
  if (!Array.isArray(v)) throw badOutput(component, `${what} is not a list`);
  return v.map((x, i) => str(x, component, `${what}[${i}]`));
}

function checkAgentInfo(v: unknown, component: string): AgentInfo {
  if (!isRecord(v)) throw badOutput(component, 'describe() did not return an agent-info record');
  return { name: str(v.name, component, 'name'), description: str(v.description, component, 'description'), tools: strs(v.tools, component, 'tools') };
}

function checkToolInfo(v: unknown, component: string): ToolInfo {
  if (!isRecord(v)) throw badOutput(component, 'describe() did not return a tool-info record');
  return {
    name: str(v.name, component, 'name'),
    description: str(v.description, component, 'description'),
    argsSchema: str(v.argsSchema, component, 'args-schema'),
    capabilities: strs(v.capabilities, component, 'capabilities'),
  };
}

function optionalNumber(v: unknown, component: string, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badOutput(component, `${what} is not a finite number`);
  return v;
}

/** Validates one step's actions; the result is a fresh copy, so nothing the glue hands back is kept by reference. */
export function checkActions(v: unknown, component: string): AgentAction[] {
  if (!Array.isArray(v)) throw badOutput(component, 'step() did not return a list of actions');
  if (v.length > MAX_ACTIONS_PER_STEP) throw badOutput(component, `step() returned ${v.length} actions; at most ${MAX_ACTIONS_PER_STEP} are allowed per step`);
  return v.map((a, i): AgentAction => {
    const where = `action ${i}`;
    if (!isRecord(a)) throw badOutput(component, `${where} is not a variant`);
    const val = a.val;
    switch (a.tag) {
      case 'generate': {
        if (!isRecord(val) || !Array.isArray(val.messages) || !isRecord(val.params)) throw badOutput(component, `${where} (generate) needs messages and params`);
        const messages = val.messages.map((m, j) => {
          if (!isRecord(m)) throw badOutput(component, `${where} message ${j} is not a record`);
          return { role: str(m.role, component, `${where} message ${j} role`), content: str(m.content, component, `${where} message ${j} content`) };
        });
        const p = val.params;
        return {
          tag: 'generate',
          val: {
            messages,
            params: {
              maxTokens: optionalNumber(p.maxTokens, component, `${where} max-tokens`),
              temperature: optionalNumber(p.temperature, component, `${where} temperature`),
              stop: strs(p.stop ?? [], component, `${where} stop`),
            },
          },
        };
      }
      case 'call-tool': {
        if (!isRecord(val)) throw badOutput(component, `${where} (call-tool) is not a tool-call record`);
        return { tag: 'call-tool', val: { id: str(val.id, component, `${where} id`), name: str(val.name, component, `${where} name`), args: str(val.args, component, `${where} args`) } };
      }
      case 'reply':
        return { tag: 'reply', val: str(val, component, `${where} (reply)`) };
      case 'done':
        return { tag: 'done', val: str(val, component, `${where} (done)`) };
      case 'fork-children': {
        if (!Array.isArray(val)) throw badOutput(component, `${where} (fork-children) is not a list`);
        return {
          tag: 'fork-children',
          val: val.map((t, j) => {
            if (!isRecord(t)) throw badOutput(component, `${where} sub-task ${j} is not a record`);
            return { id: str(t.id, component, `${where} sub-task ${j} id`), task: str(t.task, component, `${where} sub-task ${j} task`) };
          }),
        };
      }
      default:
        throw badOutput(component, `${where} has unknown tag ${JSON.stringify(a.tag)}`);
    }
  });
}

function badOutput(component: string, why: string): FerryError {
  return new FerryError('component/bad-output', `Component "${component}" returned invalid data: ${why}. The component is faulty; fix or rebuild it.`);
}
