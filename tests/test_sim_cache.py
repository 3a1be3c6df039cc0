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
    names = [name for name, _ in cache.package_stamp()]
    assert {"sim/kernels.py", "sim/engine.py", "sim/schedule.py", "sim/rng.py",
            "intspec/layout.py", "intspec/requantize.py"} <= set(names)
    assert len(names) == sum(len([f for f in os.listdir(folder) if f.endswith(".py")])
                             for folder in cache.STAMPED)


def _package_copy(root, layout_text="X = 1\n"):
    folders = [root / "sim", root / "intspec"]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "a.py").write_text("Y = 2\n")
    (folders[1] / "layout.py").write_text(layout_text)
    (folders[1] / "notes.txt").write_text("not a module")
    return folders


def test_the_stamp_changes_when_a_module_it_covers_changes(tmp_path):
    folders = _package_copy(tmp_path)
    before = cache.package_stamp(folders)
    assert [name for name, _ in before] == ["sim/a.py", "intspec/a.py", "intspec/layout.py"]
    st = os.stat(folders[1] / "layout.py")
    (folders[1] / "layout.py").write_text("X = 2\n")  # same size, same modification time
    os.utime(folders[1] / "layout.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.package_stamp(folders) != before
    (folders[1] / "notes.txt").write_text("changed, but not a module")
    (folders[1] / "layout.py").write_text("X = 1\n")
    assert cache.package_stamp(folders) == before


def test_the_same_sources_elsewhere_or_touched_keep_the_stamp(tmp_path):
    """A reinstall or a checkout rewrites the files (new times, same bytes):
    the cache, half a minute of compiling, stays valid."""
    folders = _package_copy(tmp_path / "one")
    before = cache.package_stamp(folders)
    for folder in folders:
        for path in folder.iterdir():
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert cache.package_stamp(folders) == before
    assert cache.package_stamp(_package_copy(tmp_path / "two")) == before


def test_installing_twice_adds_nothing():
    from numba.core import caching
    before = list(caching.CacheImpl._locator_classes)
    assert cache.install()
    assert caching.CacheImpl._locator_classes == before
