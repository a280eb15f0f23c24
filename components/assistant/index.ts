/**
 * `assistant`: a general assistant that answers in conversation and uses whatever tools the host grants among the
 * built-ins (files, notes, a JavaScript sandbox, a document store). State — the whole conversation — is module
 * state, checkpointed by the host after every step.
 */
import { chatAgent } from '../lib/chat-agent.ts';

const TOOLS = ['workspace', 'notes', 'js', 'docs'];

const SYSTEM = [
  'You are Ferry\'s assistant: helpful, accurate and brief.',
  'Use a tool when it gets a better answer than you can give alone: compute with "js" instead of doing arithmetic in your head,',
  'look things up in "docs" when the user has added documents, keep files in "workspace" and structured notes in "notes".',
  'After a tool result, either call another tool or answer the user. When you answer, do not include a tool call.',
].join(' ');

const step = chatAgent({ system: SYSTEM, tools: TOOLS, turn: { maxRounds: 10 } });

export function describe() {
  return { name: 'assistant', description: 'A general assistant that answers questions and uses the workspace, notes, js and docs tools.', tools: TOOLS };
}

export { step };
