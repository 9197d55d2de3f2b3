import { describe, expect, test } from "vitest";
import { defaultMaxValueBytes, maxKeyBytes, prefixEnd, utf8Length, validateKey, validatePrefix } from "./key.ts";

describe("validateKey", () => {
  test.each([["a"], ["/config/service/db.url"], ["é"], ["😀"], ["x".repeat(maxKeyBytes)], ["\u{feff}bom"], ["tab\u0080"]])(
    "accepts %j",
    (key) => {
      expect(validateKey(key)).toBeNull();
    },
  );

  test.each<[string, string]>([
    ["", "EmptyKey"],
    ["x".repeat(maxKeyBytes + 1), "KeyTooLong"],
    ["é".repeat(maxKeyBytes / 2 + 1), "KeyTooLong"], // 513 chars, 1026 bytes
    ["😀".repeat(maxKeyBytes / 4 + 1), "KeyTooLong"],
    ["a\u0000b", "ControlCharacter"],
    ["line\n", "ControlCharacter"],
    ["\u001f", "ControlCharacter"],
    ["del\u007f", "ControlCharacter"],
    ["\ud800", "LoneSurrogate"],
    ["a\udc00", "LoneSurrogate"],
    ["\ud83d", "LoneSurrogate"],
    ["\ude00\ud83d", "LoneSurrogate"],
  ])("rejects %j with %s", (key, code) => {
    const e = validateKey(key);
    expect(e?.code).toBe(code);
    expect(e?.message.length).toBeGreaterThan(0);
  });

  test("the byte limit is in UTF-8, so 1024 bytes of multi-byte characters pass", () => {
    expect(validateKey("é".repeat(512))).toBeNull();
    expect(validateKey("😀".repeat(256))).toBeNull();
  });

  test("a prefix may be empty but otherwise follows the key rules", () => {
    expect(validatePrefix("")).toBeNull();
    expect(validatePrefix("a/")).toBeNull();
    expect(validatePrefix("a\n")?.code).toBe("ControlCharacter");
  });

  test("utf8Length matches TextEncoder for well-formed strings", () => {
    for (const s of ["", "abc", "é", "€", "😀", "a😀é€z", "\u{10ffff}"]) expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
  });

  test("prefixEnd bounds exactly the strings with the prefix", () => {
    expect(prefixEnd("a/")).toBe("a0");
    expect(prefixEnd("a\uffff")).toBe("b");
    expect(prefixEnd("")).toBeNull();
    expect(prefixEnd("\uffff\uffff")).toBeNull();
    for (const s of ["a/", "a/x", "a/\uffff", "a/😀"]) expect(s >= "a/" && s < "a0").toBe(true);
  });

  test("the default value limit is 1.5 MiB", () => {
    expect(defaultMaxValueBytes).toBe(1_572_864);
  });
});
