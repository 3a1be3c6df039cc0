"""numba's on-disk cache for the simulator's kernels, stale as soon as any module
they are built from changes: numba checks only a kernel's own file, yet a cached
kernel holds the compiled code of every kernel it calls from other files, and
the constants it read at compile time (the RAM layout of cellsim.intspec).
The stamp is the modules' contents, not their times: a reinstall or a checkout
of the same sources keeps the cache (a cold compile is half a minute)."""
import hashlib
import os

from numba.core import caching

PACKAGE = os.path.dirname(os.path.abspath(__file__))
# Every folder whose modules the kernels call or take constants from.
STAMPED = (PACKAGE, os.path.join(os.path.dirname(PACKAGE), "intspec"))


_digests = {}  # (path, inode, times, size) -> SHA-256 of the file, read once per version


def _digest(path) -> str:
    st = os.stat(path)  # (ctime: any write changes it, and no utime sets it back)
    key = (path, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    if key not in _digests:
        with open(path, "rb") as f:
            _digests[key] = hashlib.sha256(f.read()).hexdigest()
    return _digests[key]


def package_stamp(folders=STAMPED) -> tuple:
    """Folder/name and SHA-256 of every module the kernels read."""
    return tuple((f"{os.path.basename(folder)}/{name}", _digest(os.path.join(folder, name)))
                 for folder in folders for name in sorted(os.listdir(folder))
                 if name.endswith(".py"))


def _package_wide(locator):
    class PackageWide(locator):
        """numba's own locator for this package's kernels, with the package's stamp."""

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != PACKAGE:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return package_stamp()

    PackageWide.__name__ = PackageWide.__qualname__ = "PackageWide" + locator.__name__
    return PackageWide


def install() -> bool:
    """Put the package-wide locators first (idempotent); False if this numba
    keeps its locators elsewhere (it then checks each kernel's own file only)."""
    try:
        classes = caching.CacheImpl._locator_classes
        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                 caching.UserWideCacheLocator)
    except AttributeError:
        return False
    if not any(c.__name__.startswith("PackageWide") for c in classes):
        classes[:0] = [_package_wide(base) for base in bases]
    return True


INSTALLED = install()
