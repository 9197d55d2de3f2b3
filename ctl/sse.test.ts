import { expect, test } from "vitest";
import { SseParser } from "./sse.ts";

test("events come out whole, whatever the chunk boundaries", () => {
  const stream = 'retry: 1000\n\nevent: put\ndata: {"a":1}\n\nevent: put\nid: 7\ndata: {"b":2}\n\n: comment\n\nevent: progress\r\ndata: {"revision":7}\r\n\r\n';
  const whole = new SseParser().push(stream);
  expect(whole).toEqual([
    { event: "put", id: null, data: '{"a":1}' },
    { event: "put", id: "7", data: '{"b":2}' },
    { event: "progress", id: null, data: '{"revision":7}' },
  ]);
  for (let size = 1; size < 12; size++) {
    const p = new SseParser();
    const got = [];
    for (let k = 0; k < stream.length; k += size) got.push(...p.push(stream.slice(k, k + size)));
    expect(got).toEqual(whole);
  }
});

test("multi-line data is joined with newlines; an unfinished event waits", () => {
  const p = new SseParser();
  expect(p.push("data: a\ndata: b\n")).toEqual([]);
  expect(p.push("\n")).toEqual([{ event: "message", id: null, data: "a\nb" }]);
});
