#!/usr/bin/env python3
"""What the batch cache warm-up saves (BENCHMARKS.md, "Prompt caching").

A loopback Messages API that simulates prompt caching the way the API bills it: the
prefix of a request is everything up to its last cache_control breakpoint; a request
whose prefix is in the cache reads it (cache_read_input_tokens), any other writes it
(cache_creation_input_tokens). A written prefix is readable once that answer has begun
(its message_start went out), so requests sent in parallel before then each write it
again. Tokens are estimated as 4 bytes each. Answers stream: message_start after
--ttfb-ms, then --deltas text deltas over --stream-ms.

The same batch (N one-line questions about one attached document, -j J) runs twice
with --cache: with the warm-up (the default) and without (CS_MSG_NO_WARMUP=1), and once
without --cache. Prints the batch summaries and a table.

    benches/cache_warmup.py                      # target/debug/cs-msg, 50 lines, -j 8
    benches/cache_warmup.py --bin target/release/cs-msg --lines 200 --jobs 16

Standard library only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def prefix_of(body):
    """The JSON of tools, system and messages up to the last breakpoint, or None."""
    parts = []
    last = None
    for tool in body.get("tools") or []:
        parts.append(tool)
        if "cache_control" in tool:
            last = len(parts)
    system = body.get("system")
    for block in system if isinstance(system, list) else ([system] if system else []):
        parts.append(block)
        if isinstance(block, dict) and "cache_control" in block:
            last = len(parts)
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = content if isinstance(content, list) else [content]
        for block in blocks:
            parts.append([message.get("role"), block])
            if isinstance(block, dict) and "cache_control" in block:
                last = len(parts)
    if last is None:
        return None, len(json.dumps(parts))
    return json.dumps(parts[:last], sort_keys=True), len(json.dumps(parts))


class Cache:
    def __init__(self):
        self.lock = threading.Lock()
        self.ready = set()  # prefixes whose writing answer has begun

    def usage(self, body):
        prefix, total_bytes = prefix_of(body)
        total = total_bytes // 4
        if prefix is None:
            return None, {"input_tokens": total, "output_tokens": 0}
        cached = len(prefix) // 4
        with self.lock:
            hit = prefix in self.ready
        usage = {
            "input_tokens": max(total - cached, 1),
            "output_tokens": 0,
            "cache_read_input_tokens": cached if hit else 0,
            "cache_creation_input_tokens": 0 if hit else cached,
        }
        return (None if hit else prefix), usage

    def started(self, prefix):
        if prefix is not None:
            with self.lock:
                self.ready.add(prefix)


def handler(cache, ttfb, stream_s, deltas):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            writes, usage = cache.usage(body)
            usage["output_tokens"] = deltas
            time.sleep(ttfb)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

            def event(name, data):
                chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()

            start = {"id": "msg_bench", "type": "message", "role": "assistant",
                     "model": body.get("model"), "content": [], "stop_reason": None,
                     "stop_sequence": None, "usage": usage}
            event("message_start", {"type": "message_start", "message": start})
            cache.started(writes)
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
            for _ in range(deltas):
                time.sleep(stream_s / deltas)
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": "ok "}})
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            event("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": deltas}})
            event("message_stop", {"type": "message_stop"})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def run(binary, args, env_extra, opts, workdir):
    cache = Cache()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), handler(cache, opts.ttfb_ms / 1000, opts.stream_ms / 1000, opts.deltas))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS_MSG_")}
    env.update({"CS_MSG_API_KEY": "sk-bench", "NO_PROXY": "*"}, **env_extra)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    started = time.monotonic()
    out = subprocess.run(
        [binary, "--base-url", url, "--batch", "in.jsonl", "-j", str(opts.jobs),
         "-s", "Answer in one line.", "-f", "doc.txt"] + args,
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False)
    wall = time.monotonic() - started
    server.shutdown()
    summary = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    if out.returncode != 0:
        sys.exit(f"cs-msg exited {out.returncode}: {out.stderr}")
    counts = {k: int(v) for k, v in re.findall(r"(input|output|cache read|cache write) (\d+)", summary)}
    return summary, counts, wall


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "debug", "cs-msg"))
    p.add_argument("--lines", type=int, default=50)
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--doc-kb", type=int, default=40, help="size of the attached document")
    p.add_argument("--ttfb-ms", type=int, default=400)
    p.add_argument("--stream-ms", type=int, default=300)
    p.add_argument("--deltas", type=int, default=10)
    opts = p.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        line = "The quick brown fox jumps over the lazy dog, again and again.\n"
        with open(os.path.join(workdir, "doc.txt"), "w") as f:
            f.write(line * (opts.doc_kb * 1024 // len(line)))
        with open(os.path.join(workdir, "in.jsonl"), "w") as f:
            for i in range(opts.lines):
                f.write(json.dumps(f"Question {i}: what does line {i} say?") + "\n")
        runs = [
            ("no --cache", [], {}),
            ("--cache, no warm-up", ["--cache"], {"CS_MSG_NO_WARMUP": "1"}),
            ("--cache, warm-up", ["--cache"], {}),
        ]
        results = []
        for name, args, env in runs:
            summary, counts, wall = run(opts.bin, args, env, opts, workdir)
            print(f"{name}: {summary}  [{wall:.2f} s]")
            results.append((name, counts, wall))
    print()
    print(f"{opts.lines} lines, -j {opts.jobs}, a {opts.doc_kb} KB document, "
          f"first answer byte after {opts.ttfb_ms} ms")
    print()
    print("| run | input | cache write | cache read | billed input (write 1.25×, read 0.1×) | wall |")
    print("|---|---|---|---|---|---|")
    for name, c, wall in results:
        billed = c.get("input", 0) + 1.25 * c.get("cache write", 0) + 0.1 * c.get("cache read", 0)
        print(f"| {name} | {c.get('input', 0)} | {c.get('cache write', 0)} | "
              f"{c.get('cache read', 0)} | {billed:,.0f} | {wall:.2f} s |")


if __name__ == "__main__":
    main()
