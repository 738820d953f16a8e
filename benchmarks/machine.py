"""The machine line every benchmark prints: CPU model and count, accelerators, load average,
Python and (when the benchmark uses it) TensorFlow."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what `platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """'1 min / 5 min / 15 min' load average ('?' where the OS has none)."""
    if not hasattr(os, "getloadavg"):
        return "?"
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def describe() -> str:
    """One line: CPU, logical CPUs, GPUs TensorFlow sees, load average, versions."""
    parts = [f"{cpu_model()}, {os.cpu_count()} logical CPUs"]
    versions = [f"Python {platform.python_version()}"]
    tf = sys.modules.get("tensorflow")  # only when the benchmark itself uses TensorFlow
    if tf is not None:
        gpus = tf.config.list_physical_devices("GPU")
        parts.append(f"{len(gpus)} GPU(s)" if gpus else "no GPU")
        versions.append(f"TensorFlow {tf.__version__}")
    parts.append(f"load average {load_average()} (1/5/15 min)")
    return ", ".join(parts) + "; " + ", ".join(versions)
