// A deliberately small MCP server for the cases the reference servers cannot show:
// paging, a server that dies mid-call, one that never answers, one that asks the client
// things, one that ignores SIGTERM and has a child of its own. `node mock-server.js MODE`.
"use strict";
const { spawn } = require("child_process");
const readline = require("readline");

const mode = process.argv[2] || "basic";
const send = (message) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
const text = (t) => ({ content: [{ type: "text", text: t }] });
const tool = (name) => ({ name, description: `the ${name} tool`, inputSchema: { type: "object" } });

const pages = {
  undefined: { tools: [tool("a"), tool("b")], nextCursor: "page 2" },
  "page 2": { tools: [tool("c")], nextCursor: "page 3" },
  "page 3": { tools: [tool("d")] },
};
const cancelled = [];
let held = null;
let asked = null;

if (mode === "stubborn") {
  // Neither end of input nor SIGTERM stops it or its child: only SIGKILL does.
  process.on("SIGTERM", () => {});
  spawn(process.execPath, ["-e", "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], {
    stdio: "ignore",
  });
  setInterval(() => {}, 1000);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  const { id, method, params } = message;
  if (method === undefined) {
    // A response to one of our requests (mode "asks").
    if (asked !== null) {
      asked.replies.push(message);
      if (asked.replies.length === 2) send({ id: asked.id, result: text(JSON.stringify(asked.replies)) });
    }
    return;
  }
  if (method === "notifications/cancelled") cancelled.push(params.requestId);
  if (id === undefined) return;
  if (mode === "silent") return;
  if (method === "initialize") {
    const protocolVersion = mode === "old-version" ? "1999-01-01" : params.protocolVersion;
    send({ id, result: { protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "mock", version: "1" } } });
  } else if (method === "tools/list") {
    send({ id, result: pages[params.cursor] || { tools: [] } });
  } else if (method === "tools/call") {
    const name = params.name;
    if (name === "die") process.exit(3);
    else if (name === "hold") held = id;
    else if (name === "release") {
      send({ id, result: text("released") });
      if (held !== null) send({ id: held, result: text(`held: ${JSON.stringify(params.arguments)}`) });
    } else if (name === "never") {
      // No answer: the client times out and cancels.
    } else if (name === "flood") {
      // One line longer than any message cs-msg reads.
      process.stdout.write('{"jsonrpc":"2.0","id":' + id + ',"result":"' + "x".repeat(33 << 20));
    } else if (name === "cancelled") send({ id, result: text(JSON.stringify(cancelled)) });
    else if (name === "ask") {
      asked = { id, replies: [] };
      send({ id: "p1", method: "ping" });
      send({ id: 99, method: "sampling/createMessage", params: { messages: [], maxTokens: 1 } });
    } else if (name === "rpc-error") send({ id, error: { code: -32000, message: "the mock refuses" } });
    else send({ id, result: text(`called ${name}`) });
  } else {
    send({ id, error: { code: -32601, message: `no ${method}` } });
  }
});
