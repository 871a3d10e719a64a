"""Time per photo through `Session`, end to end: `python -m skinseg.bench.session [MODEL.onnx ...]`.

What a user of `Session().predict(photo)` waits for: decoding excluded, everything else
included (resize to the network, ONNX Runtime, the resize back (guided or Lanczos), the
small-skin pass where the model's metadata turns it on). Each model runs on the same
photo-like images of `--megapixels` (3:2, blurred noise with a skin-coloured disc: a large
region, so the small-skin pass does not run) and on one with only small skin regions
(`--small`: the pass runs where the model has it). A cell is the median of `--runs` calls
after a warm-up call. The shipped model (fp32 and int8) is always the first rows, and every row
gives its ratio to the shipped fp32 model, so a table compares runs on one machine only; the
CPU and threads head the table, printed and written to `results/bench/session_time.{md,csv}`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from skinseg.errors import (
    ArgumentParser,
    add_debug_option,
    at_least,
    positive_float,
    thread_count,
    user_command,
)
from skinseg.settings import set_command_defaults

SKIN_RGB = (224, 172, 150)


def photo(megapixels: float, small_skin: bool, seed: int = 0) -> np.ndarray:
    """A 3:2 RGB uint8 test photo of about `megapixels`: smooth noise and skin-coloured discs.

    One disc of a third of the height, or (`small_skin`) twelve of a fiftieth.
    """
    height = int(round((megapixels * 1e6 / 1.5) ** 0.5))
    width = int(round(height * 1.5))
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    centres = rng.uniform(0.1, 0.9, (12 if small_skin else 1, 2)) * (width, height)
    radius = height // (100 if small_skin else 6)
    for x, y in centres.astype(int):
        cv2.circle(image, (int(x), int(y)), radius, SKIN_RGB, thickness=-1)
    return image


@user_command
def main(argv: list[str]) -> None:
    from rich.console import Console

    from skinseg.bench import add_output_options, check_tables, median_seconds, save_table
    from skinseg.hardware import cpu_info, default_threads
    from skinseg.inference.session import Session

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help=".onnx files timed beside the shipped model")
    parser.add_argument("--megapixels", type=positive_float)
    parser.add_argument("--runs", type=at_least(1))
    parser.add_argument("--threads", type=thread_count,
                        help="ONNX Runtime threads (default: this process's cores)")
    add_output_options(parser, Path("results") / "bench")
    add_debug_option(parser)
    set_command_defaults(parser, "bench", "session")
    args = parser.parse_args(argv)
    check_tables(args.out, ["session_time"], args.overwrite)
    if args.runs < 1 or args.megapixels <= 0:
        parser.error("--runs must be >= 1 and --megapixels > 0")
    threads = args.threads or default_threads()
    sessions = {"shipped fp32": Session(precision="fp32", threads=threads),
                "shipped int8": Session(precision="int8", threads=threads)}
    sessions |= {path.name: Session(path, threads=threads) for path in args.models}
    images = {"large skin": photo(args.megapixels, small_skin=False), "small skin": photo(args.megapixels, True)}
    rows = []
    for name, session in sessions.items():
        seconds = [median_seconds(lambda image=image: session.predict(image), args.runs) for image in images.values()]
        rows.append([name, session.size, f"{session.zoom:g}" if session.zoom else "off", *seconds])
    baseline = rows[0][3:]
    height, width = next(iter(images.values())).shape[:2]
    lines = [f"`Session.predict` on a {width}x{height} photo ({args.megapixels:g} MP), median of {args.runs} "
             f"calls, {threads} threads, {cpu_info().describe()}; ratio to the shipped fp32 model.", "",
             "| model | input | small-skin pass | large skin s | ratio | small skin s | ratio |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for name, size, zoom, large, small in rows:
        lines.append(f"| {name} | {size} | {zoom} | {large:.3f} | {large / baseline[0]:.2f} | {small:.3f} | "
                     f"{small / baseline[1]:.2f} |")
    text = "\n".join(lines)
    Console(width=200).print(text, markup=False)
    save_table(args.out, "session_time", text, ["model", "input_size", "zoom", "large_skin_s", "small_skin_s"], rows)


if __name__ == "__main__":
    main()
