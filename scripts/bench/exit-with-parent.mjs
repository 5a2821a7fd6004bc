// Preloaded (node --import) into every process bench.ts starts: stops it when bench.ts's stdin pipe closes.
// Plain JavaScript, so it can go into llmtap's own command line without a loader: even a SIGKILLed bench,
// which runs no cleanup, then leaves no server behind.
if (process.env.BENCH_PARENT_PIPE === '1') {
  // SIGTERM rather than exit(): the process stops the way it was built to (llmtap flushes what it holds).
  const stop = () => process.kill(process.pid, 'SIGTERM');
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  // Watching must not be what keeps the process alive.
  process.stdin.unref?.();
}
