/**
 * What the person's own content may be, explicitly: the workspace tool's and the docs tool's own limits (one
 * source of truth: their components), and the readers' limits on what they take in before anything is decoded.
 */
import { LIMITS as WORKSPACE } from '../../../components/workspace/files.ts';
import { LIMITS as DOCS } from '../../../components/docs/store.ts';
import { MAX_SOURCES } from '../../../components/lib/sources.ts';

export const CONTENT_LIMITS = {
  /** Files one addition to a workspace takes (the workspace holds at most WORKSPACE.files in all). */
  workspaceFiles: 500,
  /** Characters of one workspace file, and of all of them together: the workspace's own limits. */
  fileChars: WORKSPACE.fileBytes,
  totalChars: WORKSPACE.totalBytes,
  pathChars: WORKSPACE.pathLength,
  /** Bytes of one .zip file, of the entries it may list, and of all its entries unpacked. */
  zipBytes: 32 * 1024 * 1024,
  zipEntries: 5000,
  zipUnpackedBytes: 64 * 1024 * 1024,
  /** Sources one agent reads (survey's and podcast's limit), and the characters one keeps (docs takes 1,000,000). */
  sources: MAX_SOURCES,
  sourceChars: 400_000,
  sourceTitleChars: DOCS.titleChars,
  /** Bytes of one source file before it is read (a PDF of a long book), and pages of a PDF read. */
  sourceFileBytes: 32 * 1024 * 1024,
  pdfPages: 1000,
} as const;

/** A limit in messages: "512 KB", "8 MB". */
export function size(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / 1024 / 1024)} MB` : `${Math.round(bytes / 1024)} KB`;
}
