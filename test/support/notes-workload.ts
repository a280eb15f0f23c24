/**
 * A deterministic workload for the `notes` tool, shared by the Node, child-process and Chromium tests so all of them
 * compare the same calls: adds (nested), lists, gets, deletes and calls that the tool answers with an error.
 */
export function notesCalls(from: number, to: number): string[] {
  const calls: string[] = [];
  for (let i = from; i < to; i++) {
    // Blocks of six calls; block k adds notes 2k+1 (a topic) and 2k+2 (a detail under it), ids being sequential.
    const k = Math.floor(i / 6);
    const topic = 2 * k + 1;
    switch (i % 6) {
      case 0: calls.push(JSON.stringify({ op: 'add', title: `topic ${k}`, body: `notes on topic ${k}. `.repeat(1 + (k % 5)) })); break;
      case 1: calls.push(JSON.stringify({ op: 'add', title: `detail ${k}`, body: `under ${topic}`, parent: topic })); break;
      case 2: calls.push(JSON.stringify({ op: 'list' })); break;
      case 3: calls.push(JSON.stringify({ op: 'get', id: topic + 1 })); break;
      // Odd blocks delete the previous topic (and its detail); even blocks read it back.
      case 4: calls.push(JSON.stringify(k % 2 === 1 ? { op: 'delete', id: topic - 2 } : { op: 'get', id: Math.max(1, topic - 2) })); break;
      default: calls.push(k % 3 === 2 ? '{"op":"rename"}' : JSON.stringify({ op: 'list', parent: topic }));
    }
  }
  return calls;
}

/** Runs each call through `invoke` and records "ok <json>" or "err <message>" (the WIT result's two cases). */
export function runCalls(invoke: (args: string) => unknown, calls: readonly string[]): string[] {
  return calls.map((args) => {
    try {
      return `ok ${String(invoke(args))}`;
    } catch (err) {
      const payload = (err as { payload?: unknown }).payload;
      if (typeof payload !== 'string') throw err;
      return `err ${payload}`;
    }
  });
}

/** The `invoke` export of a tool instance. */
export function invokeOf(exports: Readonly<Record<string, unknown>>): (args: string) => unknown {
  const invoke = exports.invoke;
  if (typeof invoke !== 'function') throw new Error('the component exports no invoke()');
  return invoke as (args: string) => unknown;
}
