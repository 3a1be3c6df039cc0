"""--mcu TARGET@FREQ, --duty and --link: the hardware-time options that
`cellsim simulate` and `cellsim demo` share (cellsim/hardware.py has the model).
Not a sub-command itself."""
from ..errors import ConfigError


def add_hardware_arguments(parser) -> None:
    """--mcu, --duty, --link: shared by `cellsim simulate` and `cellsim demo`."""
    parser.add_argument("--mcu", metavar="TARGET@FREQ",
                        help="give times in seconds on a grid of this MCU, e.g. cortex-m4@80MHz, "
                             "from its measured cost of an update (targets: "
                             f"{', '.join(hardware_targets())})")
    parser.add_argument("--duty", type=float, default=1.0,
                        help="with --mcu: share of its time a cell spends computing (default 1: "
                             "updates back-to-back)")
    parser.add_argument("--link", metavar="BAUD",
                        help="with --mcu: each link is a UART at BAUD (8N1); the 16-byte state "
                             "messages then take 160 bits / BAUD on the wire")


def hardware_targets() -> list:
    from ..errors import CellsimError
    from ..hardware import targets

    try:
        return targets()
    except CellsimError:
        return ["none measured"]


def hardware_clock(args):
    """The McuClock of --mcu/--duty/--link, or None; HardwareError on bad values."""
    from ..hardware import McuClock

    if args.mcu is None:
        if args.link is not None or args.duty != 1.0:
            raise ConfigError("--link and --duty go with --mcu TARGET@FREQ")
        return None
    return McuClock.parse(args.mcu, duty=args.duty, link=args.link)
