"""Cold and warm starts as Lambda runs them: each sample is a fresh process under the CPU quota of a memory size
(bench/cpu_share.py; from its first `next` on, or from its exec with BENCH_INIT=share), served by a minimal Runtime API on 127.0.0.1 (outside the quota, as Lambda's is), reaching
the local stack over TLS (bench/tls_endpoint.py) with the trust store given through the SDKs' normal settings. The
process gets two events of the same path: the first is the cold one (its connections and TLS handshakes included),
the second the warm one.

Per sample: init (exec -> first `GET /runtime/invocation/next`), first event and warm event (event handed
over -> response posted), the CPU time the process used in each (sum of its threads' `/proc/<pid>/task/*/schedstat`
run time; no runtime here ends a thread within a sample), peak RSS (VmHWM at the warm response) and the AWS calls each event's outcome reports.

Usage: python bench/cold_start.py SAMPLES OUT.json MEMORY_MB[,MEMORY_MB...] FUNCTION=BINARY[=CASES.json]...
(run by bench/cold-start). CASES.json is bench/prepare.py's, made with two events per sample and size (cold, warm); the
Python peer (bench/peer) runs the same cases' peer events when it has a module for the function. A FUNCTION without
cases is a floor: it gets two unknown events, and its peer is the Python runtime loop alone (noop.handler).
Environment: BENCH_ENDPOINT (https://localhost:PORT), BENCH_TRUST_STORE (PEM bundle), BENCH_PEER_PYTHON;
BENCH_PEERS=0 leaves the Python runtimes out; BENCH_INIT=burst (default: init at full CPU, the quota from the first `next` on, as Lambda's init burst) or share
(the whole process under the quota: the strict reading, an upper bound).
Prints one Markdown table per memory size; writes every sample as JSON.
"""

import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cpu_share import PERIOD_US, CpuShare
from lambda_bench import envelope_unknown, invocation_headers, peak_rss_kib, runtime_commands, wait_then_end


def cpu_ns(pid):
    """CPU time used so far by every thread of `pid`, in ns (schedstat's first field)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class RuntimeApi:
    """Hands out the given events one per `next`; records arrival times, CPU used and the results."""

    def __init__(self, events, timeout_s=30, on_first_next=None):
        self.events = list(events)
        self.pid = None
        self.first_next = None
        self.init_cpu_ns = None
        self.invocations = []  # {"handed_over", "cpu_before", "finished", "cpu_after", "ok", "outcome"}
        self.rss_kib = 0
        self.done = threading.Event()
        self.release = threading.Event()
        api, total = self, len(self.events)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                now = time.perf_counter()
                if api.first_next is None:
                    api.first_next, api.init_cpu_ns = now, cpu_ns(api.pid)
                    if on_first_next:
                        on_first_next(api.pid)
                if not api.events:
                    api.release.wait(60)  # held, as Lambda holds it, until the harness has killed the process
                    self.close_connection = True
                    return
                if api.invocations:
                    # A warm event reaches a sandbox later, not the instant it answered: the quota of the period the
                    # cold event used up has been refilled by then.
                    time.sleep(2 * PERIOD_US / 1e6)
                body = json.dumps(api.events.pop(0)).encode()
                api.invocations.append({"cpu_before": cpu_ns(api.pid), "handed_over": time.perf_counter()})
                invocation_headers(self, len(body), timeout_s)
                self.wfile.write(body)

            def do_POST(self):
                finished = time.perf_counter()
                payload = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not api.invocations:  # /init/error: the process failed before its first event
                    api.invocations.append({"handed_over": finished, "cpu_before": 0})
                api.invocations[-1].update(finished=finished, cpu_after=cpu_ns(api.pid),
                                           ok=self.path.endswith("/response"), outcome=json.loads(payload or b"null"))
                if len(api.invocations) == total:
                    api.rss_kib = peak_rss_kib(api.pid)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if len(api.invocations) == total or not api.invocations[-1]["ok"]:
                    api.done.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def spawn_stopped(command, env, log):
    """Starts `command` stopped just before its exec: a shell stops itself, then execs the command when continued.
    The fork and the shell run outside the quota and their CPU is not counted (see `sample`)."""
    process = subprocess.Popen(["/bin/sh", "-c", 'kill -STOP $$; exec "$0" "$@"', *command], env=env, stdout=log,
                               stderr=log)
    while True:
        with open(f"/proc/{process.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return process
        time.sleep(0.001)


def sample(command, env, events, share, burst, limit_s=120):
    """One cold start and one warm event. `burst`: init runs at full CPU and the quota applies from the first
    `next` on (Lambda's init burst); otherwise the whole process runs under the quota."""
    # A new sandbox starts with its whole quota: let the group's previous process's use of a period run out.
    time.sleep(2 * PERIOD_US / 1e6)
    api = RuntimeApi(events, on_first_next=share.add if burst else None)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.port}",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(share.memory_mb))
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")
    process = spawn_stopped(command, env, log)
    api.pid = process.pid
    if not burst:
        share.add(process.pid)
    cpu_before_exec = cpu_ns(process.pid)
    started = time.perf_counter()
    os.kill(process.pid, signal.SIGCONT)
    wait_then_end(api, process, log, limit_s, json.dumps(events))
    failed = [i.get("outcome") for i in api.invocations if i.get("ok") is False]
    if failed:
        raise RuntimeError(f"{command[-1]}: invocation failed: {failed[0]}")
    cold, warm = api.invocations
    outcome = lambda i: {"decision": (i["outcome"] or {}).get("decision"),
                         "calls": (i["outcome"] or {}).get("aws-calls", {})}
    return {
        "init_ms": (api.first_next - started) * 1000,
        "init_cpu_ms": (api.init_cpu_ns - cpu_before_exec) / 1e6,
        "cold_ms": (cold["finished"] - cold["handed_over"]) * 1000,
        "cold_cpu_ms": (cold["cpu_after"] - cold["cpu_before"]) / 1e6,
        "warm_ms": (warm["finished"] - warm["handed_over"]) * 1000,
        "warm_cpu_ms": (warm["cpu_after"] - warm["cpu_before"]) / 1e6,
        "peak_rss_mib": api.rss_kib / 1024,
        "cold": outcome(cold),
        "warm": outcome(warm),
    }


FIGURES = ("init_ms", "cold_ms", "warm_ms", "init_cpu_ms", "cold_cpu_ms", "warm_cpu_ms", "peak_rss_mib")


def summary(runs):
    figures = {key: statistics.median(r[key] for r in runs) for key in FIGURES}
    figures["start_to_first_response_ms"] = statistics.median(r["init_ms"] + r["cold_ms"] for r in runs)
    figures["decisions"] = sorted({f"{r['cold']['decision']}/{r['warm']['decision']}" for r in runs})
    figures["calls"] = sorted({sum(r["cold"]["calls"].values()) for r in runs})
    return figures


def plan(entries, samples, sizes):
    """One entry per function, case and runtime: the command, its environment and the events of its samples."""
    env = dict(os.environ, AWS_ENDPOINT_URL=os.environ["BENCH_ENDPOINT"],
               SSL_CERT_FILE=os.environ["BENCH_TRUST_STORE"], AWS_CA_BUNDLE=os.environ["BENCH_TRUST_STORE"])
    peer_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer")
    planned = []
    for spec in entries:
        function, binary, *cases_file = spec.split("=")
        module = function.replace("-", "_")
        if not cases_file:
            runtimes = runtime_commands(binary, os.environ["BENCH_PEER_PYTHON"], "noop.handler", env)
            unknown = [envelope_unknown() for _ in range(2 * samples * sizes)]
            planned += [{"function": function, "case": "floor: runtime loop only", "runtime": name,
                         "command": command, "env": runtime_env, "events": unknown}
                        for name, (command, runtime_env) in runtimes.items()]
            continue
        with open(cases_file[0]) as f:
            cases = json.load(f)
        has_peer = os.path.exists(os.path.join(peer_dir, f"{module}.py"))
        runtimes = runtime_commands(binary, os.environ["BENCH_PEER_PYTHON"], f"{module}.handler" if has_peer else None,
                                    env)
        for case in cases:
            for name, (command, runtime_env) in runtimes.items():
                events = case["peer_events"] if name == "python" else case["events"]
                if len(events) < 2 * samples * sizes:
                    raise SystemExit(f"{function}: {case['name']}: {len(events)} events for {samples} samples at "
                                     f"{sizes} sizes")
                planned.append({"function": function, "case": case["name"], "runtime": name, "command": command,
                                "env": dict(runtime_env, **case.get("env", {})), "events": events})
    if os.environ.get("BENCH_PEERS", "1") == "0":
        planned = [entry for entry in planned if entry["runtime"] != "python"]
    return planned


def table_header(share, measured, burst):
    init = "init at full CPU (burst), events under the quota" if burst else "init and events under the quota"
    return (f"### {share.describe()}; a CPU-bound probe got {measured:.1%}; {init}\n\n"
            "| function | case | runtime | decision (cold/warm) | calls | init ms | first event ms "
            "| start → first response ms | warm event ms | CPU ms init / first / warm | peak RSS MiB |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(entry, figures):
    return (f"| {entry['function']} | {entry['case']} | {entry['runtime']} | {', '.join(figures['decisions'])} "
            f"| {', '.join(map(str, figures['calls']))} | {figures['init_ms']:.1f} | {figures['cold_ms']:.1f} "
            f"| {figures['start_to_first_response_ms']:.1f} | {figures['warm_ms']:.1f} "
            f"| {figures['init_cpu_ms']:.1f} / {figures['cold_cpu_ms']:.1f} / {figures['warm_cpu_ms']:.1f} "
            f"| {figures['peak_rss_mib']:.1f} |")


def main():
    samples, out_file = int(sys.argv[1]), sys.argv[2]
    burst = os.environ.get("BENCH_INIT", "burst") == "burst"
    sizes = [int(mb) for mb in sys.argv[3].split(",")]
    entries = plan(sys.argv[4:], samples, len(sizes))
    shares = [CpuShare(mb) for mb in sizes]
    measured = [share.verify() for share in shares]
    runs = {}
    for n, entry in enumerate(entries):
        sample(entry["command"], entry["env"], [envelope_unknown(), envelope_unknown()], shares[0], burst)  # cache
        # The sizes take turns sample by sample, so that each meets the local stack in the same state (moto slows
        # as it fills); every sample of every size takes its own situation (two events: cold, warm).
        for i in range(samples):
            for k, share in enumerate(shares):
                first = 2 * (samples * k + i)
                runs.setdefault((n, k), []).append(
                    sample(entry["command"], entry["env"], entry["events"][first:first + 2], share, burst))
    results = []
    for k, share in enumerate(shares):
        print(table_header(share, measured[k], burst))
        for n, entry in enumerate(entries):
            figures = summary(runs[(n, k)])
            results.append({"memory_mb": share.memory_mb, "cpu_share": share.share, "cpu_share_measured": measured[k],
                            "burst": burst, **{key: entry[key] for key in ("function", "case", "runtime")},
                            "summary": figures, "samples": runs[(n, k)]})
            print(table_row(entry, figures))
        share.close()
        print()
    with open(out_file, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
