"""Where a cold start's CPU goes, in instructions (valgrind's callgrind counts them the same on a busy machine):
runs a release function under callgrind twice, over TLS to the local stack as bench/cold_start.py does, once
until its first `GET /runtime/invocation/next` (init) and once until its second (init + the first event), ending
the process there with SIGTERM, as Lambda ends a sandbox (callgrind writes its profile on the way out). Prints
the total of each and the functions with the most inclusive instructions (build with symbols for names:
bench/cold-start does, into target/profiling).

Usage: python bench/profile_cold.py BINARY EVENT.json OUT_DIR [TOP]   (bench/cold-start's environment:
BENCH_ENDPOINT, BENCH_TRUST_STORE, and what the function needs, e.g. WARDEN_LEDGER_TABLE)
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def runtime_api(events, pid):
    """A Runtime API that hands out `events` and answers the `next` after them with SIGTERM to `pid[0]`."""
    pending = list(events)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not pending:
                # Ended as Lambda ends a sandbox, by a signal: callgrind writes its profile on the way out.
                os.kill(pid[0], signal.SIGTERM)
                self.close_connection = True
                return
            body = json.dumps(pending.pop(0)).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
            self.send_header("Lambda-Runtime-Deadline-Ms", "4102444800000")
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:b")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def profile(binary, events, out):
    pid = [None]
    server = runtime_api(events, pid)
    env = dict(os.environ, AWS_ENDPOINT_URL=os.environ["BENCH_ENDPOINT"], SSL_CERT_FILE=os.environ["BENCH_TRUST_STORE"],
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}", AWS_LAMBDA_FUNCTION_NAME="bench",
               AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128")
    env.pop("RUST_BACKTRACE", None)
    process = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid[0] = process.pid  # valgrind runs the program in its own process
    process.wait(timeout=600)
    server.shutdown()
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True,
                               check=True).stdout
    total = int(re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotated, re.M).group(1).replace(",", ""))
    return total, annotated


def top_lines(annotated, count):
    lines = [l for l in annotated.splitlines() if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", l)]
    return [l for l in lines if "PROGRAM TOTALS" not in l][:count]


def main():
    binary, event_file, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    with open(event_file) as f:
        event = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(binary)
    init, init_report = profile(binary, [], os.path.join(out_dir, f"{name}.init.callgrind"))
    both, both_report = profile(binary, [event], os.path.join(out_dir, f"{name}.first.callgrind"))
    print(f"{name}: init {init / 1e6:.1f} M instructions; init + first event {both / 1e6:.1f} M "
          f"(first event {(both - init) / 1e6:.1f} M)")
    for title, report in (("init", init_report), ("init + first event", both_report)):
        print(f"\n{title}, inclusive:")
        print("\n".join(top_lines(report, top)))


if __name__ == "__main__":
    main()
