// The flags every Concord process starts Node with: the image's ENTRYPOINT,
// the e2e pod runner, `npm start` and the test and benchmark clusters all
// use these, so that what is measured is what runs.
//
// --max-semi-space-size=32 (MiB), the size V8 picks by itself on a machine
// with a few GiB of memory, set so that a small node does not get less. A
// leader allocates about 25 KB per HTTP write (Node's HTTP server and
// express), and each young-generation collection that comes soon after a
// full one must finish that one's sweeping on the main thread, which took
// 100-190 ms on a busy 2-core machine with a 100,000-key store: long enough
// for followers with a 100 ms election timeout to elect a new leader. Measured
// with npm run bench:profile --preload 100000 (--node-flags=--trace-gc-nvp):
// with 8 MiB the leader had 7-9 pauses over 100 ms in 150 s and lost its
// leadership; with 16 MiB, 1-4 and lost it once in two runs; with 32 MiB,
// none, at 5-8 % more writes/s. The cost is memory: about 95 MiB more RSS per
// member than with 8 MiB.

export const nodeRuntimeFlags: readonly string[] = ["--max-semi-space-size=32"];
