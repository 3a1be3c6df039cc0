"""The kernels' numba cache is stamped with every module of cellsim.sim and
cellsim.intspec, so a change to one file (say kernels.py, or the RAM layout the
kernels compile in as constants) cannot leave a stale copy inside another
file's cached kernels (say engine.run_band)."""
import os

from cellsim.sim import cache, engine, kernels


def test_kernels_carry_the_package_stamp():
    assert cache.INSTALLED
    for kernel in (engine.run_band, kernels.batch_network):
        locator = kernel._cache._impl.locator
        assert type(locator).__name__.startswith("PackageWide")
        assert locator.get_source_stamp() == cache.package_stamp()
    names = [name for name, _, _ in cache.package_stamp()]
    assert {"sim/kernels.py", "sim/engine.py", "sim/schedule.py", "sim/rng.py",
            "intspec/layout.py", "intspec/requantize.py"} <= set(names)
    assert len(names) == sum(len([f for f in os.listdir(folder) if f.endswith(".py")])
                             for folder in cache.STAMPED)


def test_the_stamp_changes_when_a_module_it_covers_changes(tmp_path):
    folders = [tmp_path / "sim", tmp_path / "intspec"]
    for folder in folders:
        folder.mkdir()
        (folder / "a.py").write_text("X = 1\n")
    (tmp_path / "intspec" / "notes.txt").write_text("not a module")
    before = cache.package_stamp(folders)
    assert [name for name, _, _ in before] == ["sim/a.py", "intspec/a.py"]
    st = os.stat(folders[1] / "a.py")
    os.utime(folders[1] / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert cache.package_stamp(folders) != before


def test_installing_twice_adds_nothing():
    from numba.core import caching
    before = list(caching.CacheImpl._locator_classes)
    assert cache.install()
    assert caching.CacheImpl._locator_classes == before
