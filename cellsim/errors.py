"""Typed errors of cellsim. The command line turns each into one line on stderr
and exit status 2; the Python API lets them propagate."""


class CellsimError(Exception):
    """Base class: bad input or a bad file, never a bug in cellsim."""


class TargetError(CellsimError):
    """A target image or emoji name that cannot be used."""


class CheckpointError(CellsimError):
    """A checkpoint that is missing, unreadable or from another version."""


class GenomeError(CellsimError):
    """A genome file that is truncated, corrupt or inconsistent."""


class ConfigError(CellsimError):
    """An option, preset or fault plan with a value out of range."""


class OutputError(CellsimError):
    """An output path that cannot be written."""


class HardwareError(ConfigError):
    """An MCU target, clock frequency, duty or link rate that cannot be used."""
