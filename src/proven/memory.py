"""Host memory during a run: the peak of what the whole machine used, sampled."""

from __future__ import annotations

import threading
from pathlib import Path


def used_mib() -> int:
    """Memory in use on the host (MemTotal - MemAvailable), in MiB."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        info[key] = int(rest.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) // 1024


class PeakSampler:
    """Samples host memory every ``interval`` seconds in a thread; ``peak`` is the highest."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.baseline = used_mib()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, used_mib())

    def start(self) -> PeakSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, used_mib())
