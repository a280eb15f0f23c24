/**
 * Child process for the "restore in another process" test: reads { dir, image, calls } as JSON on stdin, loads the
 * component built in `dir`, restores the image into a fresh instance, runs the calls and prints the results as JSON.
 */
import { text } from 'node:stream/consumers';
import { loadBuiltComponent } from '../../server/runtime/node-components.ts';
import { instantiate } from '../../src/core/runtime/index.ts';
import { invokeOf, runCalls } from './notes-workload.ts';
import { imageFromJson, type StateImageJson } from './state-image-json.ts';

const input = JSON.parse(await text(process.stdin)) as { dir: string; image: StateImageJson; calls: string[] };
const instance = await instantiate(await loadBuiltComponent(input.dir), {});
instance.restore(imageFromJson(input.image));
process.stdout.write(JSON.stringify({ pid: process.pid, results: runCalls(invokeOf(instance.exports), input.calls) }));
