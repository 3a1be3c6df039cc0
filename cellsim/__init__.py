"""cellsim: Growing Neural Cellular Automata on simulated grids of tiny computers.

The simulator side of the package (this package) needs numpy and numba only;
training lives in the `training` package and is the only user of torch."""
__version__ = "0.1.0"
