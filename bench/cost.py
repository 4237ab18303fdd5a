"""Cost per million events against latency, from bench/cold_start.py's results: for each function, runtime and
memory size, what a million warm events cost, what a million cold starts cost (init is billed: always for custom
runtimes such as provided.al2023, and for managed runtimes such as Python since August 2025), and the mix at a
given share of cold starts. Lambda's published on-demand prices (us-east-1, arm64, as infra/template.yaml deploys):
$0.0000133334 per GB-second, billed per 1 ms, and $0.20 per million requests.

The recommended size per function (`recommend`): the cheapest at the mix, then each next larger size while it
costs at most 10 % more and cuts the warm event by at least 30 % (the CPU share still throttles it).

Usage: python bench/cost.py RESULTS.json [COLD_SHARE]   (default 0.05: one event in twenty starts a sandbox)
"""

import json
import math
import sys

GB_SECOND_ARM64 = 0.0000133334
PER_REQUEST = 0.20 / 1e6
# A larger size is worth it when it costs at most this much more per million events than the size below...
STEP_COST = 0.10
# ...and cuts the warm event's duration by at least this much.
STEP_LATENCY = 0.30


def per_million(memory_mb, billed_ms):
    """Dollars for a million invocations each billed `billed_ms` (rounded up to the ms) at `memory_mb`."""
    return 1e6 * (PER_REQUEST + memory_mb / 1024 * math.ceil(billed_ms) / 1000 * GB_SECOND_ARM64)


def rows(results, cold_share):
    for r in results:
        s = r["summary"]
        cold = s["start_to_first_response_ms"]
        warm = s["warm_ms"]
        mixed = cold_share * per_million(r["memory_mb"], cold) + (1 - cold_share) * per_million(r["memory_mb"], warm)
        yield {"function": r["function"], "runtime": r["runtime"], "memory_mb": r["memory_mb"], "cold_ms": cold,
               "warm_ms": warm, "warm_cost": per_million(r["memory_mb"], warm),
               "cold_cost": per_million(r["memory_mb"], cold), "mixed_cost": mixed}


def main():
    with open(sys.argv[1]) as f:
        results = json.load(f)
    cold_share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    print(f"\n## Cost per million events (arm64, us-east-1 list prices; {cold_share:.0%} of events start a sandbox)\n")
    print(f"| function | runtime | MB | start → first response ms | warm event ms | $ / 1M warm | $ / 1M cold "
          f"| $ / 1M at {cold_share:.0%} cold |")
    print("|---|---|---|---|---|---|---|---|")
    table = sorted(rows(results, cold_share), key=lambda x: (x["function"], x["runtime"], x["memory_mb"]))
    for x in table:
        print(f"| {x['function']} | {x['runtime']} | {x['memory_mb']} | {x['cold_ms']:.0f} | {x['warm_ms']:.1f} "
              f"| {x['warm_cost']:.3f} | {x['cold_cost']:.3f} | {x['mixed_cost']:.3f} |")
    print(f"\nThe size per function and runtime: the cheapest at that mix, then each larger size while it costs at most "
          f"{STEP_COST:.0%} more than the size before and cuts the warm event by at least {STEP_LATENCY:.0%}:")
    by_key = {}
    for x in table:
        by_key.setdefault((x["function"], x["runtime"]), []).append(x)
    for (function, runtime), sizes in sorted(by_key.items()):
        x = recommend(sizes)
        print(f"- {function} ({runtime}): **{x['memory_mb']} MB**, ${x['mixed_cost']:.3f} per million, "
              f"cold start to first response {x['cold_ms']:.0f} ms, warm event {x['warm_ms']:.1f} ms")


def recommend(sizes):
    """The cheapest size, then larger ones while each step is cheap for what it buys (STEP_COST, STEP_LATENCY)."""
    sizes = sorted(sizes, key=lambda x: x["memory_mb"])
    chosen = min(sizes, key=lambda x: x["mixed_cost"])
    for bigger in sizes:
        if bigger["memory_mb"] <= chosen["memory_mb"]:
            continue
        if (bigger["mixed_cost"] <= chosen["mixed_cost"] * (1 + STEP_COST)
                and bigger["warm_ms"] <= chosen["warm_ms"] * (1 - STEP_LATENCY)):
            chosen = bigger
        else:
            break
    return chosen

if __name__ == "__main__":
    main()
