"""The CPU a Lambda function gets for its memory size, as a cgroup CPU quota: Lambda allocates CPU in proportion to
memory, one vCPU at 1,769 MB, so 128 MB is 7.2 % of a core. The quota is set with the kernel's CFS bandwidth
control over its default 100 ms period: cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, or cgroup v2 `cpu.max`,
whichever the machine mounts. bench/cold_start.py moves a process into the group at its first `next` (Lambda's
init burst), or with BENCH_INIT=share before its exec (it starts the process stopped, so the harness's fork is
not counted), and `verify()` measures the share a CPU-bound probe really gets. Needs root.
"""

import os
import subprocess
import sys
import time

MB_PER_VCPU = 1769
PERIOD_US = 100_000
V2_ROOT = "/sys/fs/cgroup"
V1_ROOT = "/sys/fs/cgroup/cpu"


class CpuShare:
    def __init__(self, memory_mb):
        self.memory_mb = memory_mb
        self.share = memory_mb / MB_PER_VCPU
        quota_us = int(PERIOD_US * self.share)
        if os.path.exists(os.path.join(V2_ROOT, "cgroup.controllers")):
            self.version = 2
            try:
                with open(os.path.join(V2_ROOT, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
            except OSError as error:  # EBUSY: processes sit in the root group (a container's own namespace)
                raise RuntimeError(f"cannot enable the cpu controller under {V2_ROOT}: {error}; run the "
                                   "benchmark where the cgroup root has no processes of its own (a VM, not a "
                                   "container)") from error
            self.path = os.path.join(V2_ROOT, f"warden-bench-{memory_mb}mb")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.max", f"{quota_us} {PERIOD_US}")
        elif os.path.isdir(V1_ROOT):
            self.version = 1
            self.path = os.path.join(V1_ROOT, f"warden-bench-{memory_mb}mb")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.cfs_period_us", str(PERIOD_US))
            self._write("cpu.cfs_quota_us", str(quota_us))
        else:
            raise RuntimeError("no cgroup CPU controller mounted (neither v2 nor v1 cpu)")
        self.quota_us = quota_us
        self.procs = os.path.join(self.path, "cgroup.procs")

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def add(self, pid):
        """Moves process `pid` into the group."""
        with open(self.procs, "w") as f:
            f.write(str(pid))

    def enter(self):
        """For `subprocess.Popen(preexec_fn=...)`: the child joins the group before it execs."""
        self.add(os.getpid())

    def describe(self):
        how = "cpu.max" if self.version == 2 else "cpu.cfs_quota_us"
        return (f"{self.memory_mb} MB: {self.share:.1%} of a core "
                f"(cgroup v{self.version} {how} = {self.quota_us} µs per {PERIOD_US} µs)")

    def verify(self, cpu_ms=None):
        """The share a CPU-bound probe gets in the group: its CPU time over its wall time (spinning until it has
        used `cpu_ms` of CPU, by default about one and a half seconds of wall time)."""
        cpu_ms = cpu_ms or max(20, int(1500 * self.share))
        probe = ("import time\nstart, used = time.perf_counter(), time.process_time()\n"
                 f"while time.process_time() - used < {cpu_ms / 1000}: pass\n"
                 "print((time.process_time() - used) / (time.perf_counter() - start))")
        out = subprocess.run([sys.executable, "-c", probe], preexec_fn=self.enter, capture_output=True, text=True,
                             check=True)
        return float(out.stdout)

    def close(self):
        time.sleep(0.05)  # the last process must have left the group
        try:
            os.rmdir(self.path)
        except OSError:
            pass
