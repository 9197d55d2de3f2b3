import { describe, expect, it } from "vitest";
import { ApiException, KubeConfig } from "@kubernetes/client-node";
import { apiErrorFromResponse, classifyError } from "./errors.ts";
import { RestClient } from "./rest.ts";

const status = (code: number, reason: string, message: string): object => ({ kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message });

describe("classifyError", () => {
  it.each([
    [409, "AlreadyExists", "Conflict"],
    [409, "Conflict", "Conflict"],
    [422, "Invalid", "Invalid"],
    [400, "BadRequest", "Invalid"],
    [404, "NotFound", "NotFound"],
    [403, "Forbidden", "Forbidden"],
    [401, "Unauthorized", "Forbidden"],
    [410, "Expired", "Transient"],
    [429, "TooManyRequests", "Transient"],
    [500, "InternalError", "Transient"],
    [503, "ServiceUnavailable", "Transient"],
  ] as const)("HTTP %i %s is %s", (code, reason, type) => {
    const e = classifyError(new ApiException(code, "Unsuccessful HTTP Request", status(code, reason, "the message"), {}));
    expect(e).toEqual({ type, status: code, reason, message: "the message" });
  });

  it("treats kube-apiserver's 500 for an SSA schema error as Invalid (kubernetes/kubernetes#139253)", () => {
    const e = apiErrorFromResponse(500, status(500, "", "failed to create typed patch object (/x; /v1, Kind=ConfigMap): .bogus: field not declared in schema"));
    expect(e.type).toBe("Invalid");
  });

  it("reads a text or JSON-text body", () => {
    expect(apiErrorFromResponse(502, "bad gateway\n")).toMatchObject({ type: "Transient", message: "bad gateway" });
    expect(apiErrorFromResponse(404, JSON.stringify(status(404, "NotFound", "gone")))).toMatchObject({ reason: "NotFound", message: "gone" });
    expect(apiErrorFromResponse(403, undefined)).toMatchObject({ type: "Forbidden", message: "HTTP 403" });
  });

  it("classifies network failures as Transient and rethrows bugs", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    expect(classifyError(refused)).toMatchObject({ type: "Transient", status: 0 });
    expect(classifyError(new TypeError("fetch failed", { cause: refused })).message).toContain("ECONNREFUSED");
    expect(classifyError(new DOMException("timed out", "TimeoutError")).type).toBe("Transient");
    const bug = new TypeError("cannot read properties of undefined");
    expect(() => classifyError(bug)).toThrow(bug);
  });

  it("RestClient reports an unreachable apiserver as Transient, status 0", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: "https://127.0.0.1:1", skipTLSVerify: true }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const r = await new RestClient(kc).request({ method: "GET", path: "/api/v1/namespaces" });
    expect(r).toMatchObject({ ok: false, error: { type: "Transient", status: 0 } });
  });
});
