"""The machine record stored with every benchmark: CPU model and the SIMD flags
that decide int8 and float speed, cores, GPU, library versions and load average.
Speed numbers mean nothing without it, so every speed.json has one beside it."""
import datetime
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess

# Flags that change which kernels onnxruntime, torch and numba pick.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
              "asimd", "asimddp", "sve", "i8mm")
LIBRARIES = ("numpy", "numba", "torch", "onnx", "onnxruntime", "matplotlib", "Pillow")
# Environment variables that change thread pools and so the numbers.
THREAD_VARIABLES = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages ([] where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def _cpuinfo() -> dict:
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key and key not in info:  # the first processor describes them all here
                    info[key] = value.strip()
    except OSError:
        pass
    return info


def cpu_record() -> dict:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    model = info.get("model name") or info.get("Model") or platform.processor() or platform.machine()
    vnni = sorted(f for f in flags if "vnni" in f)
    return {
        "model": model,
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "avx2": "avx2" in flags,
        "avx512": any(f.startswith("avx512") for f in flags),
        "vnni": bool(vnni),
        "hypervisor": "hypervisor" in flags,
    }


def gpu_record() -> list[str]:
    """Names of the CUDA devices torch sees ([] without torch or a GPU)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    gcc = shutil.which("gcc")
    if gcc:
        try:
            first = subprocess.run([gcc, "--version"], capture_output=True, text=True,
                                   timeout=30).stdout.splitlines()
            versions["gcc"] = re.sub(r"\s+", " ", first[0]) if first else None
        except (OSError, subprocess.SubprocessError):
            versions["gcc"] = None
    else:
        versions["gcc"] = None
    return versions


def machine_record() -> dict:
    """Everything but the closing load average (finish_record adds it)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_record(),
        "memory_gb": _memory_gb(),
        "gpu": gpu_record(),
        "libraries": library_versions(),
        "threads": thread_record(),
        "load_average_start": load_average(),
    }


def thread_record() -> dict:
    """Thread-pool settings: the environment, torch's and numba's thread counts."""
    record = {"environment": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}
    try:
        import torch
        record["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import numba
        record["numba_threads"] = numba.get_num_threads()
        record["numba_threading_layer"] = numba.config.THREADING_LAYER
    except ImportError:
        pass
    return record


def finish_record(record: dict) -> dict:
    record["load_average_end"] = load_average()
    try:
        import numba
        # known only once a parallel kernel has run
        record.setdefault("threads", {})["numba_threading_layer"] = numba.threading_layer()
    except (ImportError, ValueError):
        pass
    return record


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe(record: dict) -> str:
    """One paragraph for the markdown reports."""
    cpu = record["cpu"]
    libs = record["libraries"]
    gpu = ", ".join(record["gpu"]) or "none"
    load = lambda key: " ".join(f"{x:.2f}" for x in record.get(key, [])) or "n/a"  # noqa: E731
    lib_text = ", ".join(f"{k} {v}" for k, v in libs.items() if v)
    env = record.get("threads", {}).get("environment", {})
    env_text = (" " + " ".join(f"{k}={v}" for k, v in env.items()) + ";") if env else ""
    return (f"{cpu['model']} ({cpu['architecture']}), {cpu['usable_cores']} usable of "
            f"{cpu['logical_cores']} logical cores, SIMD {' '.join(cpu['simd']) or 'none listed'} "
            f"(AVX2 {'yes' if cpu['avx2'] else 'no'}, AVX-512 {'yes' if cpu['avx512'] else 'no'}, "
            f"VNNI {'yes' if cpu['vnni'] else 'no'}); GPU: {gpu}; {record['os']}; {lib_text};{env_text} "
            f"Load average (1/5/15 min) at start {load('load_average_start')}, "
            f"at end {load('load_average_end')}; {record['date']}.")
