"""Thread pools that share a machine: OpenMP's idle threads are told to wait
passively, which every command that loads torch or numba's OpenMP layer does
before they start."""
import os


def passive_openmp_waits() -> None:
    """OpenMP threads (torch, numba's omp layer) that spin while waiting stall
    each other as soon as another process holds a core: on this shared 2-core
    machine the simulator's synchronous step ran 100x slower. Waiting passively
    costs little on an idle machine. Effective
    only before torch or numba start their thread pools; an explicit
    OMP_WAIT_POLICY in the environment wins. The benchmarks' machine record
    notes it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
