"""Suite-wide settings. OpenMP pools that spin while idle (the default of torch's
and numba's OpenMP) starve the other pytest worker on a 2-core machine, so the
suite asks for passive waits before any of them is imported. Also the
one_torch_thread fixture, for the modules of small torch tensors, and
small_genome_file, the random genome the command-line tests run."""
import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module's tests (ask for it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`): their tensors
    are tiny, and the suite runs one worker per core, so a second OpenMP thread
    per worker only adds contention."""
    import torch  # here, not at the top: many test modules never need torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_genome_file(tmp_path_factory):
    """A random 16-hidden-unit genome saved as lizard.genome (the simulate and
    hardware-time command tests run it)."""
    from cellsim.genome import save_genome
    from strategies import random_genome

    path = tmp_path_factory.mktemp("genome") / "lizard.genome"
    save_genome(random_genome(4, hidden=16), path)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CELLSIM_NO_SKIPS=1 (set by .ci/run) a skipped test fails: CI installs
    every compiler, emulator and package, so a skip there means an install step
    went missing, and it must not pass as green."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CELLSIM_NO_SKIPS") == "1" and report.skipped and \
            not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which CELLSIM_NO_SKIPS forbids: {report.longrepr}"
