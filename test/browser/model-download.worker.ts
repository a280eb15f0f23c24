/**
 * Downloads a model in a worker, reporting progress, so a test can end the download the way a reload or a closed
 * tab does: the worker is terminated mid-download, with no chance to close what it was writing.
 */
import { downloadModel, type DownloadOptions, type DownloadProgress } from '../../src/browser/llm/model-download.ts';

export type DownloadWorkerMessage = { type: 'progress'; progress: DownloadProgress } | { type: 'done' } | { type: 'error'; message: string };

self.onmessage = async (event: MessageEvent<{ url: string; options: Pick<DownloadOptions, 'expected' | 'folder' | 'segmentBytes'> }>) => {
  const post = (m: DownloadWorkerMessage): void => self.postMessage(m);
  try {
    await downloadModel(event.data.url, { ...event.data.options, onProgress: (progress) => post({ type: 'progress', progress }) });
    post({ type: 'done' });
  } catch (err) {
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
};
