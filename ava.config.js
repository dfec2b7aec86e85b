// Tests are compiled by `tsc` first (which also type-checks them) and ava runs the output.
export default {
  files: ['dist/test/**/*.test.js'],
  workerThreads: false,
  concurrency: 2,
  timeout: '3m',
  verbose: false,
};
