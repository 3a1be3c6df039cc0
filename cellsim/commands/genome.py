"""`cellsim genome info FILE [--json]`: validate a genome file and describe it
(dimensions, size against the 10,240-byte ROM budget, CRC, source hash, scales).
A bad file is one line on stderr and exit status 2, like every cellsim error."""
import json


def add_arguments(parser):
    actions = parser.add_subparsers(dest="genome_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="validate a genome file and print what it holds",
                              description="Validate a genome file and print what it holds.")
    info.add_argument("file", metavar="FILE", help="genome file written by `cellsim quantize`")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def describe(genome, path) -> dict:
    """Every reported fact as plain JSON types."""
    from cellsim.genome import FORMAT_VERSION, MAX_GENOME_BYTES
    p = genome.params
    counts = genome.byte_counts
    size = counts.file
    return {
        "file": str(path),
        "name": genome.name,
        "target": genome.target,
        "recorded_target": recorded_target(path),
        "format_version": FORMAT_VERSION,
        "channels": p.channels,
        "hidden": p.hidden,
        "perception": 3 * p.channels,
        "parameter_count": genome.parameter_count,
        "file_bytes": size,
        "rom_bytes": counts.rom,
        "budget_bytes": MAX_GENOME_BYTES,
        "fits_budget": size <= MAX_GENOME_BYTES,
        "crc32": f"0x{genome.crc32:08x}",
        "source_sha256": genome.source_sha256.hex(),
        "grid_size": genome.grid_size,
        "fire_rate": genome.fire_rate,
        "angle": genome.angle,
        "torus": genome.torus,
        "hidden_zero_point": p.hidden_zero_point,
        "alive_threshold": p.alive_threshold,
        "state_scale": [float(s) for s in p.state_scale],
        "hidden_scale": p.hidden_scale,
    }


def recorded_target(path):
    """The training target recorded beside the genome file, or None."""
    from cellsim.target_images import recorded_target_path

    recorded = recorded_target_path(path)
    return str(recorded) if recorded.is_file() else None


def format_text(info: dict) -> str:
    from cellsim.genome import GenomeBytes

    c, h = info["channels"], info["hidden"]
    share = 100.0 * info["file_bytes"] / info["budget_bytes"]
    verdict = "within" if info["fits_budget"] else "OVER"
    scales = " ".join(f"{s:.4g}" for s in info["state_scale"])
    rows = [
        ("file", info["file"]),
        ("name", info["name"] or "(none)"),
        ("target", target_text(info)),
        ("format", f"version {info['format_version']}"),
        ("dimensions", f"{c} channels, {h} hidden units, {info['perception']} perception inputs"),
        ("parameters", f"{info['parameter_count']:,} (w1 {h}x{3 * c} int8, b1 {h} int32, "
                       f"w2 {c}x{h} int8, b2 {c} int32)"),
        ("genome ROM", f"{info['rom_bytes']:,} bytes, {GenomeBytes.ROM_COUNTS}"),
        ("file size", f"{info['file_bytes']:,} bytes, {verdict} the {info['budget_bytes']:,}-byte "
                      f"ROM budget ({share:.1f}%): {GenomeBytes.FILE_COUNTS}"),
        ("crc32", info["crc32"]),
        ("source sha256", info["source_sha256"]),
        ("grid", f"{info['grid_size']}x{info['grid_size']}, "
                 f"{'torus' if info['torus'] else 'zero padding'}"),
        ("fire rate", f"{info['fire_rate']:g}"),
        ("angle", f"{info['angle']:g} rad (folded into w1)"),
        ("hidden zero pt", str(info["hidden_zero_point"])),
        ("alive test", f"alpha q > {info['alive_threshold']}"),
        ("state scale", scales),
        ("hidden scale", f"{info['hidden_scale']:.6g}"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def target_text(info: dict) -> str:
    recorded = info["recorded_target"]
    beside = f"pixels recorded in {recorded}" if recorded else ""
    if info["target"]:
        return info["target"] + (f" ({beside})" if beside else "")
    return beside or ("(none: trained on an image, and no .target.png beside the genome; "
                      "`cellsim simulate --target IMAGE` scores it)")


def run(args) -> int:
    from cellsim.genome import load_genome
    genome = load_genome(args.file)
    info = describe(genome, args.file)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
