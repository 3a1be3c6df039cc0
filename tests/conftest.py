"""Suite-wide settings. OpenMP pools that spin while idle (the default of torch's
and numba's OpenMP) starve the other pytest worker on a 2-core machine, so the
suite asks for passive waits before any of them is imported."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
