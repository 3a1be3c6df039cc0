"""`cellsim header GENOME [--name NAME] [--out FILE] [--split] [--firmware DIR]`:
write a genome as a C99 header for microcontroller builds, optionally with the
cell firmware beside it. Bad input is one line on stderr and exit status 2."""


def add_arguments(parser):
    parser.add_argument("genome", metavar="GENOME",
                        help="genome file written by `cellsim quantize`")
    parser.add_argument("--name", help="identifier prefix: arrays become nca_NAME_blocks ... "
                                       "(default: the genome's own name, sanitised)")
    parser.add_argument("--out", metavar="FILE",
                        help="header to write (default: nca_NAME.h in --firmware DIR or here)")
    parser.add_argument("--split", action="store_true",
                        help="write a .h with extern declarations plus a .c defining the "
                             "arrays, for builds with several translation units")
    parser.add_argument("--firmware", metavar="DIR",
                        help="also copy the cell firmware (nca_cell.h, nca_cell.c, its "
                             "kernels and headers: compile every .c) into DIR")


def run(args) -> int:
    from cellsim.genome import load_genome
    from firmware_gen import write_header_files

    genome = load_genome(args.genome)
    written = write_header_files(genome, out=args.out, name=args.name, split=args.split,
                                 firmware_dir=args.firmware)
    print(f"wrote {', '.join(str(p) for p in written)} "
          f"({genome.byte_counts.text()}; CRC-32 0x{genome.crc32:08x})")
    return 0
