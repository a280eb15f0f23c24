/** What the `js` tool tells a model about itself; agents bundle it as their default tool list. */
export const jsSpec = {
  name: 'js',
  description:
    'Runs JavaScript in a sandbox and returns the value of the last expression plus everything written with ' +
    'console.log. op "eval" {code, budget?}: top-level var, let, const, function and class declarations persist ' +
    'between calls; there is no clock, timer, network or file access, and promises are not awaited. "budget" caps the ' +
    'loop iterations and function calls (default 1000000). op "globals" lists what earlier calls defined; op "reset" forgets it.',
  parameters: {
    type: 'object',
    properties: {
      op: { enum: ['eval', 'globals', 'reset'] },
      code: { type: 'string' },
      budget: { type: 'integer', minimum: 1, maximum: 50_000_000 },
    },
    required: ['op'],
  },
};
