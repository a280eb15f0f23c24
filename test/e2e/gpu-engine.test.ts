/**
 * A GPU model chosen in the UI, on a Chromium with WebGPU (SwiftShader, via --enable-unsafe-webgpu): the Models
 * screen lists the web-llm models this adapter can run, the person picks one, and a session's agent worker tries
 * web-llm for it. No model can be fetched here (nothing beyond the machine is reachable, and the test blocks
 * Hugging Face outright), so web-llm cannot load: the app says why and the session runs on its GGUF model with
 * wllama — the same replies a CPU-only session would give. Going back to the CPU in the Models screen sticks.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { devices, startUi, type UiRig } from './ui-harness.ts';

const desktop = devices.find((d) => d.name === 'desktop')!;

describe('a GPU model on a device whose GPU cannot load it', () => {
  let rig: UiRig;
  let page: Page;
  const press = (l: Locator): Promise<void> => rig.press(l);
  const hfRequests: string[] = [];

  beforeAll(async () => {
    rig = await startUi(desktop, 'gpu', { chromiumArgs: ['--enable-unsafe-webgpu'] });
    page = rig.page;
    // Dedicated workers' requests go through the context's routes too.
    await rig.browser.context.route(/^https:\/\/(huggingface\.co|raw\.githubusercontent\.com)\//, (route) => {
      hfRequests.push(route.request().url());
      return route.abort('internetdisconnected');
    });
  });
  afterAll(() => rig?.close());

  test('lists the GPU models, falls back to wllama with the reason, and the session runs on the CPU', async () => {
    await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
    // SwiftShader is a software adapter: the chooser prefers the CPU, but lists what the adapter could run.
    expect(await page.getByTestId('engine-choice').textContent()).toMatch(/llama.cpp on the CPU — The only WebGPU adapter .* is a software fallback/);
    // GGUF models on the GPU (llama.cpp's WebGPU backend): on by default, but this adapter cannot, so it is not
    // ticked (nor can be), and the screen says why.
    expect(await page.getByTestId('gguf-on-gpu').isChecked()).toBe(false);
    expect(await page.getByTestId('gguf-on-gpu').isDisabled()).toBe(true);
    expect(await page.getByTestId('gguf-on-gpu-verdict').textContent()).toMatch(/^This GPU cannot: The only WebGPU adapter \(.*\) is a software fallback, slower than the CPU engine\. Sessions run on the CPU\.$/);
    await press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
    const gpuModels = page.getByTestId('webllm-models');
    // The models it lists fit the adapter, and the list says they would be slow, as the engine choice above does.
    expect(await gpuModels.getByTestId('webllm-count').textContent()).toMatch(/^\d+ models fit this GPU, a software fallback: they would run slower than the CPU engine$/);
    const options = await gpuModels.getByRole('combobox').locator('option').allTextContents();
    expect(options.length).toBeGreaterThan(1);
    expect(options.every((o) => /-MLC.* · needs \d+ MB of GPU memory$/.test(o))).toBe(true);
    // SwiftShader has no shader-f16: only f32 models are offered.
    expect(options.filter((o) => /f16/.test(o))).toEqual([]);
    const chosen = options.find((o) => o.includes('q4f32'))!.split(' · ')[0]!;
    await gpuModels.getByRole('combobox').selectOption(chosen);
    await press(gpuModels.getByRole('button', { name: 'Use on the GPU' }));
    await gpuModels.getByTestId('gpu-model-in-use').waitFor();
    expect(await gpuModels.textContent()).toContain(`${chosen} In use`);
    await expect.poll(() => page.getByTestId('engine-choice').textContent()).toMatch(/^web-llm on WebGPU — You chose web-llm: WebGPU adapter .* \(no shader-f16: f32 models only\) runs \d+ web-llm models on the GPU\.$/);
    await rig.screen('models-gpu');

    await press(page.getByRole('link', { name: 'Sessions', exact: true }));
    await press(page.getByLabel(/Dev guide/));
    await page.getByLabel(/^Title/).fill('On the GPU?');
    await press(page.getByRole('button', { name: 'Create session' }));
    await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await rig.transcriptReady();
    // The worker tried web-llm (its chat template first, before any weights) and handed over to wllama.
    await expect
      .poll(() => page.getByTestId('toast').allTextContents(), { timeout: 60_000 })
      .toContainEqual(expect.stringMatching(new RegExp(`^The web-llm model ${chosen.replace(/[.]/g, '\\.')} has no chat template .*could not be fetched.*Running on wllama \\(.*\\) instead\\.`)));
    expect(hfRequests.some((u) => u.endsWith('/tokenizer_config.json'))).toBe(true);
    expect(await page.getByTestId('composer-hint').textContent()).toMatch(/^\s*Replies come from tiny\.gguf on this device;/);

    const box = page.getByLabel('Message');
    await box.fill('hello from the GPU-less device');
    await box.press('Enter');
    await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 90_000 }).toBe(1);
    expect(await page.getByTestId('agent-message').first().textContent()).toMatch(/Agent · wllama · tiny\.gguf · \d+ tokens/);
    await rig.screen('session-gpu-fallback');

    // Back to the CPU: the choice is saved and shown.
    await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await press(page.getByTestId('webllm-models').getByRole('button', { name: 'Stop using the GPU' }));
    await expect.poll(() => page.getByTestId('gpu-model-in-use').count()).toBe(0);
    await page.reload();
    await page.locator('html[data-ready="true"]').waitFor();
    await page.getByTestId('webllm-models').waitFor({ timeout: 90_000 });
    expect(await page.getByTestId('gpu-model-in-use').count()).toBe(0);
    expect(await page.getByTestId('engine-choice').textContent()).toMatch(/^llama.cpp on the CPU — The only WebGPU adapter/);

    // The GPU still cannot run the GGUF model: the box stays off after the reload.
    expect(await page.getByTestId('gguf-on-gpu').isChecked()).toBe(false);
    expect(rig.pageErrors).toEqual([]);
  });
});
