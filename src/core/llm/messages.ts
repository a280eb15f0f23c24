/** A chat message as every engine and template sees it. Tool results come back to the model as role `tool`. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** For role `tool`: which tool produced this result. */
  name?: string;
}
