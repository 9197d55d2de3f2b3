// Test fixture, preloaded into member processes with `node --import`: on
// SIGUSR2 the main thread spins for CONCORD_TEST_STALL_MS milliseconds, as a
// long garbage collection or a thread that waits for a core would hold it.
// Worker threads go on running, and the process stays otherwise healthy.

const stallMs = Number(process.env["CONCORD_TEST_STALL_MS"] ?? "250");

process.on("SIGUSR2", () => {
  const end = performance.now() + stallMs;
  while (performance.now() < end) {
    // The stall itself.
  }
});
