/**
 * comlink's Endpoint over a Node worker thread or its parentPort (the idea of comlink's node-adapter, typed):
 * Node delivers the message itself where the Web delivers `{ data }`.
 */
import type { Endpoint } from 'comlink';
import type { MessagePort, Worker } from 'node:worker_threads';

export function nodeEndpoint(port: Worker | MessagePort): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer as never),
    addEventListener(_type: string, listener: EventListenerOrEventListenerObject) {
      const wrapped = (data: unknown) => {
        const event = { data } as MessageEvent;
        if ('handleEvent' in listener) listener.handleEvent(event);
        else listener(event);
      };
      port.on('message', wrapped);
      listeners.set(listener, wrapped);
    },
    removeEventListener(_type: string, listener: EventListenerOrEventListenerObject) {
      const wrapped = listeners.get(listener);
      if (!wrapped) return;
      port.off('message', wrapped);
      listeners.delete(listener);
    },
  };
}
