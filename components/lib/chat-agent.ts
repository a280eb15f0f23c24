/**
 * A conversational agent: each user message is a turn in which the model may call tools any number of times
 * (bounded), then answers; the answer is the reply, and the agent waits for the next message. Messages that arrive
 * while a turn is running are answered in order after it. `assistant` is exactly this; `dev-guide` adds a check of
 * the final answer (see `review`).
 */
import { Conversation, guarded, route, type AgentAction, type AgentEvent, type Outcome, type TurnOptions } from './agent-kit.ts';

export interface ChatAgentConfig {
  system: string;
  tools: readonly string[];
  turn?: TurnOptions;
  /**
   * Looks at a final answer before it is sent. Returns actions to run first (e.g. tool calls that check it) or
   * undefined to send it as it is; the agent then feeds every non-conversation event to `onEvent` until it
   * returns the reply to send.
   */
  review?: {
    start(answer: string, convo: Conversation): AgentAction[] | undefined;
    onEvent(event: AgentEvent, convo: Conversation): { actions: AgentAction[] } | { reply: string } | { retry: Outcome };
  };
}

export function chatAgent(config: ChatAgentConfig): (event: AgentEvent) => AgentAction[] {
  let convo: Conversation | undefined;
  let busy = false;
  let reviewing = false;
  const queue: string[] = [];

  const ask = (text: string): AgentAction[] => {
    convo ??= new Conversation(config.system, config.tools, 'c', config.turn);
    busy = true;
    return convo.ask(text);
  };

  const finish = (reply: string): AgentAction[] => {
    busy = false;
    reviewing = false;
    const next = queue.shift();
    return [{ tag: 'reply', val: reply }, ...(next === undefined ? [] : ask(next))];
  };

  const onOutcome = (outcome: Outcome): AgentAction[] => {
    if (outcome.kind === 'working') return outcome.actions;
    const answer = outcome.text === '' ? '(The model gave an empty answer.)' : outcome.text;
    const note = outcome.stopped === 'rounds' ? '\n\n(I stopped here: this turn used its limit of tool rounds.)' : outcome.stopped === 'length' ? '\n\n(The answer was cut off at the token limit.)' : '';
    if (config.review && convo && outcome.stopped === undefined) {
      const actions = config.review.start(answer, convo);
      if (actions) { reviewing = true; return actions; }
    }
    return finish(answer + note);
  };

  const handle = (event: AgentEvent): AgentAction[] => {
    switch (event.tag) {
      case 'start': return ask(event.val);
      case 'user-message':
        if (busy) { queue.push(event.val); return []; }
        return ask(event.val);
      case 'child-results': return [];
      default: {
        if (reviewing && convo && event.tag === 'tool-result' && !convo.owns(event.val.id)) {
          const r = config.review!.onEvent(event, convo);
          if ('reply' in r) return finish(r.reply);
          if ('retry' in r) { reviewing = false; return onOutcome(r.retry); }
          return r.actions;
        }
        const outcome = route(convo, event);
        return outcome ? onOutcome(outcome) : [];
      }
    }
  };
  return (event) => guarded(handle, event);
}
