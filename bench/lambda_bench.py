"""Measures a Lambda function the way Lambda runs it: a fresh process per sample, served by a minimal Lambda
Runtime API on 127.0.0.1, against the local AWS stack (moto). Side by side: the Rust release binary and, when
given, the Python / boto3 peer (bench/peer), each sample of one followed by the same sample of the other.

Per case, runtime and sample: init time (process start -> first `GET /runtime/invocation/next`), the
invocation's duration (event handed over -> response posted, AWS round trips to moto included), the AWS calls
the outcome reports (per `Service.Operation`), and peak RSS (VmHWM) when the response is posted. Prints medians and
Python/Rust ratios as a Markdown table and writes every sample as JSON.

Usage: python bench/lambda_bench.py CASES.json SAMPLES OUT.json RUST_BINARY [PEER_PYTHON PEER_HANDLER]
(run by bench/run; PEER_HANDLER is `<module>.handler` of bench/peer (tag_guard, scan_gate, lifecycle, notify); without a peer, Rust alone)

A case may carry `env` (variables for its processes, e.g. WARDEN_POLICY_FILE) and `timeout_s` (the function's
timeout: the invocation deadline the Runtime API hands out, 30 s unless given; sweeps stop short of it).
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
        self.pid = None
        self.rss_kib = 0
        self.timeout_s = 30
        self.done = threading.Event()
        self.release = threading.Event()
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
                    # Nothing more to hand out: hold the request as Lambda does (the process stays alive, its peak
                    # RSS readable) until the harness has killed the process.
                    api.release.wait(60)
                    self.close_connection = True
                    return
                body = json.dumps(api.events.pop(0)).encode()
                invocation_headers(self, len(body), api.timeout_s)
                self.wfile.write(body)
                api.handed_over = time.perf_counter()

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = self.rfile.read(length)
                api.result = (time.perf_counter(), self.path.endswith("/response"), json.loads(payload or b"null"))
                # Read while the process waits for this answer: it cannot have exited yet.
                api.rss_kib = peak_rss_kib(api.pid)
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


def invocation_headers(handler, length, timeout_s):
    """The answer to `GET /next` up to its body: an invocation as Lambda's Runtime API hands it out."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
    handler.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + timeout_s) * 1000)))
    handler.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
    handler.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0


def wait_then_end(api, process, log, limit_s, what):
    """Waits until the Runtime API has what it waits for (`api.done`), then ends the process, its log and the API
    (also when the wait fails)."""
    try:
        if not api.done.wait(limit_s):
            raise RuntimeError(f"no response within {limit_s} s to {what[:300]}")
    finally:
        process.kill()
        process.wait()
        api.release.set()
        log.close()
        api.server.shutdown()
        api.server.server_close()


def sample(command, env, event, timeout_s=30):
    # A Runtime API of its own per process: a killed process's last `next` must not take the next event.
    api = RuntimeApi()
    api.reset(event)
    api.timeout_s = timeout_s
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}")
    started = time.perf_counter()
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    api.pid = process.pid
    wait_then_end(api, process, log, 30, json.dumps(event))
    (finished, ok, outcome), rss = api.result, api.rss_kib
    if not ok:
        raise RuntimeError(f"{command[-1]}: invocation failed: {outcome}")
    calls = (outcome or {}).get("aws-calls", {})
    return {
        "init_ms": (api.first_next - started) * 1000,
        "event_ms": (finished - api.handed_over) * 1000,
        "peak_rss_mib": rss / 1024,
        "aws_calls": sum(calls.values()),
        "calls": calls,
        "decision": (outcome or {}).get("decision"),
        # Sweeps: the decision per repository reported (a sweep leaves out repositories with nothing to do).
        "items": [item.get("decision") for item in (outcome or {}).get("items", [])],
        "reasons": (outcome or {}).get("reasons", []),
    }


def runtime_commands(binary, peer_python=None, peer_handler=None, env=None):
    """The command and environment of each runtime: the Rust binary, and the Python peer's runtime loop
    (bench/peer/bootstrap.py) when a peer is given. `env`: the environment to start from (default: this one)."""
    env = dict(os.environ if env is None else env)
    env.pop("RUST_BACKTRACE", None)  # Lambda does not set it; with it, any error's backtrace would be resolved
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
    })
    runtimes = {"rust": ([binary], env)}
    if peer_handler:
        peer_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer")
        # As on Lambda, where the code directory is read-only: the peer's own modules are compiled at every cold
        # start, boto3's come precompiled from the runtime (here: the venv's __pycache__).
        peer_env = dict(env, _HANDLER=peer_handler, LAMBDA_TASK_ROOT=peer_dir, PYTHONDONTWRITEBYTECODE="1",
                        PYTHONUNBUFFERED="1")
        peer_env.pop("PYTHONPATH", None)
        runtimes["python"] = ([peer_python, os.path.join(peer_dir, "bootstrap.py")], peer_env)
    return runtimes


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def ratio(peer, rust, key):
    return f"{median(peer, key) / median(rust, key):.1f}×" if median(rust, key) else "-"


def main():
    cases_file, samples, out_file, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(cases_file) as f:
        cases = json.load(f)
    runtimes = runtime_commands(binary, *sys.argv[5:7])
    # One untimed start each, so neither side pays for a cold page cache.
    warm_up = envelope_unknown()
    for command, runtime_env in runtimes.values():
        sample(command, runtime_env, warm_up)

    results = {}
    if "python" in runtimes:
        print("| case | decision | AWS calls | same calls in Python | init ms Rust | Python | × "
              "| event ms Rust | Python | × | peak RSS MiB Rust | Python | × |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        print("| case | decision | AWS calls | AWS calls by operation | init ms (median) "
              "| event ms (median, moto round trips included) | peak RSS MiB (median) | (max) |")
        print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        runs = {name: [] for name in runtimes}
        for i in range(samples):
            for name, (command, runtime_env) in runtimes.items():
                events = case["peer_events"] if name == "python" else case["events"]
                runs[name].append(sample(command, dict(runtime_env, **case.get("env", {})), events[i % len(events)],
                                         case.get("timeout_s", 30)))
        results[case["name"]] = runs
        rust = runs["rust"]
        decisions = ", ".join(sorted({r["decision"] + (f" ({', '.join(r['items'])})" if r["items"] else "")
                                      for r in rust}))
        calls = ", ".join(map(str, sorted({r["aws_calls"] for r in rust})))
        if "python" not in runs:
            by_operation = " / ".join(sorted({", ".join(f"{op}{f' ×{n}' if n > 1 else ''}" for op, n in r["calls"].items())
                                              for r in rust}))
            print(f"| {case['name']} | {decisions} | {calls} | {by_operation} | {median(rust, 'init_ms'):.1f} "
                  f"| {median(rust, 'event_ms'):.1f} | {median(rust, 'peak_rss_mib'):.1f} "
                  f"| {max(r['peak_rss_mib'] for r in rust):.1f} |", flush=True)
            continue
        peer = runs["python"]
        differ = [(r, p) for r, p in zip(rust, peer) if r["calls"] != p["calls"] or r["decision"] != p["decision"]]
        same = "yes" if not differ else (
            f"**no** ({len(differ)}/{samples}: Rust {differ[0][0]['decision']} {differ[0][0]['calls']}, "
            f"Python {differ[0][1]['decision']} {differ[0][1]['calls']})")
        print(f"| {case['name']} | {decisions} | {calls} | {same} "
              f"| {median(rust, 'init_ms'):.1f} | {median(peer, 'init_ms'):.1f} | {ratio(peer, rust, 'init_ms')} "
              f"| {median(rust, 'event_ms'):.1f} | {median(peer, 'event_ms'):.1f} | {ratio(peer, rust, 'event_ms')} "
              f"| {median(rust, 'peak_rss_mib'):.1f} | {median(peer, 'peak_rss_mib'):.1f} "
              f"| {ratio(peer, rust, 'peak_rss_mib')} |", flush=True)
    if "python" in runtimes:
        command, peer_env = runtimes["python"]
        baseline = [sample(command, dict(peer_env, _HANDLER="noop.handler"), warm_up) for _ in range(samples)]
        results["baseline: Python runtime loop, no boto3"] = {"python": baseline}
        print(f"| *baseline: the Python runtime loop alone (no boto3, no policy)* | skipped | 0 | | "
              f"| {median(baseline, 'init_ms'):.1f} | | | {median(baseline, 'event_ms'):.1f} | | "
              f"| {median(baseline, 'peak_rss_mib'):.1f} | |")
        every = {name: [r for case in cases for r in results[case["name"]][name]] for name in runtimes}
        print(f"| **all cases** | | | | {median(every['rust'], 'init_ms'):.1f} | {median(every['python'], 'init_ms'):.1f} "
              f"| {ratio(every['python'], every['rust'], 'init_ms')} | | | "
              f"| {median(every['rust'], 'peak_rss_mib'):.1f} | {median(every['python'], 'peak_rss_mib'):.1f} "
              f"| {ratio(every['python'], every['rust'], 'peak_rss_mib')} |")
    with open(out_file, "w") as f:
        json.dump(results, f, indent=1)


def envelope_unknown():
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": "2026-11-20T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"bucket": {"name": "warm-up"}}}


if __name__ == "__main__":
    main()
