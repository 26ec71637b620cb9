"""The `unlearn` command line. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _toy_build(args: argparse.Namespace) -> int:
    from worker.models import pick_device
    from worker.toy.build import BuildConfig, build
    from worker.toy.paths import toy_model_dir
    from worker.unlearning import ModelError

    try:
        device = pick_device(args.device)
    except ModelError as exc:
        print(f"unlearn: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else toy_model_dir()
    report = build(out, BuildConfig(seed=args.seed), log=lambda m: print(m, file=sys.stderr, flush=True), device=device)
    print(f"wrote {out} in {report['timings']['total_s'] / 60:.1f} min", file=sys.stderr)
    return 0


def _toy_sample(args: argparse.Namespace) -> int:
    from worker.toy import quality
    from worker.toy.paths import toy_model_dir

    model_dir = Path(args.model) if args.model else toy_model_dir()
    if not (model_dir / "model_index.json").is_file():
        print(f"unlearn: no diffusers pipeline at {model_dir} (model_index.json missing)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quality.sample_grid(quality.load_pipeline(model_dir), seed=args.seed).save(out)
    print(f"wrote {out}: rows are shapes, columns colours, prompt 'a {{color}} {{shape}}'", file=sys.stderr)
    return 0


class _Bar:
    """A progress bar per stage on stderr."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = self._tqdm(total=100, desc=f"{stage:>6}", file=sys.stderr, unit="%", leave=True)
        self.bar.update(round(fraction * 100) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _config(raw: str | None) -> Any:
    from worker.unlearning import UnlearnConfig

    if raw and not raw.lstrip().startswith("{"):
        path = Path(raw)
        if not path.is_file():
            raise ValueError(f"--config: {raw} is neither a JSON object nor a file")
        raw = path.read_text()
    return UnlearnConfig.from_overrides(raw)


def _run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from worker.erasure import collect_images, run_erasure
    from worker.unlearning import UnlearnError

    bar = _Bar()
    try:
        config = _config(args.config)
        overrides = {k: v for k, v in (("seed", args.seed), ("anchor", args.anchor)) if v is not None}
        config = replace(config, **overrides)
        images = collect_images([Path(p) for p in args.images])
        manifest = run_erasure(
            args.model,
            args.concept,
            images,
            config,
            Path(args.out),
            device=args.device,
            on_progress=bar,
            report_samples=args.report_samples,
        )
    except (UnlearnError, ValueError, FileExistsError) as exc:
        bar.close()
        print(f"unlearn: {exc}", file=sys.stderr)
        return 2
    bar.close()
    print(json.dumps(manifest, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unlearn", description="Erase concepts from text-to-image diffusion models.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="erase one concept from a model, no service; prints the manifest JSON")
    r.add_argument("--model", required=True, help="toy-shapes, a diffusers pipeline directory, or a hub id")
    r.add_argument("--concept", required=True, help="the concept's name, e.g. 'circle' or 'Snoopy'")
    r.add_argument("--images", required=True, nargs="+", help="1-20 example images, or directories of them")
    r.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    r.add_argument("--anchor", help="what the concept should turn into (default: a neutral prompt)")
    r.add_argument("--config", help="JSON object (or a JSON file) of config overrides; see the README")
    r.add_argument("--seed", type=int, help="random seed (overrides the config's)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.add_argument("--report-samples", type=int, default=4, help="samples per report prompt; 0 skips the report")
    r.set_defaults(func=_run)
    toy = sub.add_parser("toy", help="the toy-shapes world").add_subparsers(dest="toy_command", required=True)
    b = toy.add_parser("build", help="rebuild the toy-shapes model and classifier from a seed")
    b.add_argument("--out", help="output directory (default: the shipped models/toy-shapes)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    b.set_defaults(func=_toy_build)
    s = toy.add_parser("sample", help="draw the sample grid of a toy-shapes model (no erasure)")
    s.add_argument("--model", help="model directory (default: the shipped toy-shapes)")
    s.add_argument("--out", default="samples.png", help="PNG to write (default: samples.png)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_toy_sample)
    return p


def main(argv: list[str] | None = None) -> int:
    # The libraries' import-time notices (optional torchvision, loading bars) are noise on a terminal.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
