// The flags every Concord process starts Node with: the image's ENTRYPOINT,
// the e2e pod runner, `npm start` and the test and benchmark clusters all
// use these, so that what is measured is what runs.
//
// --max-semi-space-size=8 (MiB): V8 otherwise sizes the young generation
// from the machine's memory (up to 3 x 32 MiB here), and a member holds a
// large long-lived heap beside it. Measured after loading 100,000 keys
// into a 3-member cluster: RSS per member about 345 MiB instead of 440, for
// 3-5 % fewer writes/s at 64 clients (npm run bench:profile --node-options).

export const nodeRuntimeFlags: readonly string[] = ["--max-semi-space-size=8"];
