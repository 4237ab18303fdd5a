"""Measures a Lambda binary the way Lambda runs it: a fresh process per sample, served by a minimal Lambda
Runtime API on 127.0.0.1, against the local AWS stack (moto).

Per case and sample: init time (process start -> first `GET /runtime/invocation/next`), the invocation's duration
(event handed over -> response posted, AWS round trips to moto included), the AWS calls the outcome reports, and
peak RSS (VmHWM) after the event. Prints medians as a Markdown table and writes JSON next to it.

Usage: python bench/lambda_bench.py BINARY CASES.json SAMPLES OUT.json   (run by bench/run)
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RuntimeApi:
    """Hands out one event per `next`, records when each request arrived."""

    def __init__(self):
        self.events = []
        self.first_next = None
        self.handed_over = None
        self.result = None
        self.done = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    self.send_error(404)
                    return
                now = time.perf_counter()
                if api.first_next is None:
                    api.first_next = now
                if not api.events:
                    # Nothing more to hand out: the process is killed once its response is in.
                    self.close_connection = True
                    return
                body = json.dumps(api.events.pop(0)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                api.handed_over = time.perf_counter()

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = self.rfile.read(length)
                api.result = (time.perf_counter(), self.path.endswith("/response"), json.loads(payload or b"null"))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                api.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, event):
        self.events = [event]
        self.first_next = self.handed_over = self.result = None
        self.done.clear()


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def sample(binary, env, event):
    # A Runtime API of its own per process: a killed process's last `next` must not take the next event.
    api = RuntimeApi()
    api.reset(event)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}")
    started = time.perf_counter()
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")
    process = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    try:
        if not api.done.wait(30):
            raise RuntimeError(f"no response within 30 s to {json.dumps(event)[:300]}")
        finished, ok, outcome = api.result
        rss = peak_rss_kib(process.pid)
    finally:
        process.kill()
        process.wait()
        log.close()
        api.server.shutdown()
        api.server.server_close()
    if not ok:
        raise RuntimeError(f"invocation failed: {outcome}")
    calls = sum((outcome or {}).get("aws-calls", {}).values())
    return {
        "init_ms": (api.first_next - started) * 1000,
        "event_ms": (finished - api.handed_over) * 1000,
        "peak_rss_mib": rss / 1024,
        "aws_calls": calls,
        "decision": (outcome or {}).get("decision"),
    }


def main():
    binary, cases_file, samples, out_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(cases_file) as f:
        cases = json.load(f)
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
    })
    results = {}
    print("| case | decision | AWS calls | init ms (median) | event ms (median, moto round trips included) | peak RSS MiB (max) |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        runs = []
        for i in range(samples):
            event = case["event_for"](i) if callable(case.get("event_for")) else case["events"][i % len(case["events"])]
            runs.append(sample(binary, env, event))
        results[case["name"]] = runs
        decisions = sorted({r["decision"] for r in runs})
        calls = sorted({r["aws_calls"] for r in runs})
        print(
            f"| {case['name']} | {', '.join(decisions)} | {', '.join(map(str, calls))} "
            f"| {statistics.median(r['init_ms'] for r in runs):.1f} "
            f"| {statistics.median(r['event_ms'] for r in runs):.1f} "
            f"| {max(r['peak_rss_mib'] for r in runs):.1f} |"
        )
    with open(out_file, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
