/**
 * Child-process entry for native tests (`node --import tsx test/support/native-run.ts <mode> <arg>`):
 * - `generate '{"models":[path...],"prompts":[text...]}'`: greedy runs through load-native; prints them as JSON.
 * - `raw-load <model>`: hands the file straight to node-llama-cpp, skipping Ferry's checks (shows what they prevent).
 */
import { getLlama } from 'node-llama-cpp';
import { greedyRuns } from './native-greedy.ts';

const [mode, arg] = process.argv.slice(2);
if (mode === 'generate' && arg) {
  const { models, prompts } = JSON.parse(arg) as { models: string[]; prompts: string[] };
  const runs = [];
  for (const model of models) runs.push(await greedyRuns(model, prompts));
  process.stdout.write(`${JSON.stringify(runs)}\n`);
} else if (mode === 'raw-load' && arg) {
  const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1 });
  await llama.loadModel({ modelPath: arg });
  process.stdout.write('loaded\n');
} else {
  throw new Error('usage: native-run.ts generate <json> | raw-load <model.gguf>');
}
