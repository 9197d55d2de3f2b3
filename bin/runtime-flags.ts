// The flags every Concord process starts Node with: the image's ENTRYPOINT,
// the e2e pod runner, `npm start` and the test and benchmark clusters all
// use these, so that what is measured is what runs.
//
// --max-semi-space-size=64 (MiB): what V8 picks by itself on a machine with
// 24 GiB, set so that a member on a smaller machine does not get less. A
// leader allocates about 25 KB per HTTP write (Node's HTTP server and
// express), and a young-generation collection that comes soon after a full
// one must finish that one's sweeping on the main thread, which took
// 100-190 ms on a busy 2-core machine with a 100,000-key store: long enough
// for followers with a 100 ms election timeout to elect a new leader. The
// larger the young generation, the rarer those collections. Measured with
// npm run bench:profile --preload 100000 (--node-flags=--trace-gc-nvp to see
// the pauses): with 8 MiB the leader had 7-9 pauses over 100 ms in 150 s and
// lost its leadership; with 16 MiB it lost it once in two 120 s runs; with
// 32 MiB once in 600 s; with 64 MiB no pause over 100 ms and no leader
// change in 600 s, and 13 % more writes/s than with 32. The cost is memory:
// the young generation can take up to 3 x 64 MiB (RSS after 100,000 keys is
// in docs/benchmarks.md).

export const nodeRuntimeFlags: readonly string[] = ["--max-semi-space-size=64"];
