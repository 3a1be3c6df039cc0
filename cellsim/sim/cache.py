"""numba's on-disk cache for the simulator's kernels, stale as soon as any module
of this package changes: numba checks only a kernel's own file, yet a cached
kernel holds the compiled code of every kernel it calls from other files."""
import os

from numba.core import caching

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def package_stamp() -> tuple:
    """Name, modification time and size of every module of the package."""
    stamp = []
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(PACKAGE, name))
            stamp.append((name, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


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
