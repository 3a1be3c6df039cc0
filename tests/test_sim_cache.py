"""The kernels' numba cache is stamped with every module of cellsim.sim, so a
change to one file (say kernels.py) cannot leave a stale copy of its code inside
another file's cached kernels (say engine.run_band)."""
import os

from cellsim.sim import cache, engine, kernels


def test_kernels_carry_the_package_stamp():
    assert cache.INSTALLED
    for kernel in (engine.run_band, kernels.batch_network):
        locator = kernel._cache._impl.locator
        assert type(locator).__name__.startswith("PackageWide")
        assert locator.get_source_stamp() == cache.package_stamp()
    names = [name for name, _, _ in cache.package_stamp()]
    assert {"kernels.py", "engine.py", "schedule.py", "rng.py"} <= set(names)
    assert len(names) == len([f for f in os.listdir(cache.PACKAGE) if f.endswith(".py")])


def test_installing_twice_adds_nothing():
    from numba.core import caching
    before = list(caching.CacheImpl._locator_classes)
    assert cache.install()
    assert caching.CacheImpl._locator_classes == before
