/** The user turns every transparent-checkpointing test plays, in order (Node and Chromium alike). */
export const TURNS = ['hello world', 'tell me a story', '/call tally {"op":"list"}', 'once upon a time', 'the agent and the model', '/call tally {"op":"get","id":2}'];
