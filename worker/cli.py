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
            compile_mode=args.compile,
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


def _settings(**overrides: Any) -> Any:
    from app.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _serve(args: argparse.Namespace) -> int:
    import importlib.util
    import logging
    import threading

    import uvicorn

    from app import db, webhooks
    from app.api.main import create_app
    from app.queue import LocalQueue
    from app.services import build_services
    from worker.inprocess import EmbeddedWorker

    settings = _settings(host=args.host, port=args.port)
    settings.check_bind(settings.host)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.db_url.startswith("sqlite"):
        db.migrate(settings.db_url)
    if not settings.broker_url and importlib.util.find_spec("torch") is None:
        raise ValueError(
            "no UNLEARN_BROKER_URL and no torch here: install unlearn[ml] to run jobs in this process, "
            "or point UNLEARN_BROKER_URL at the workers' broker"
        )
    if not settings.broker_url:
        _check_compiler(settings)  # the embedded worker's
    svc = build_services(settings)
    worker = None
    if isinstance(svc.queue, LocalQueue):
        worker = EmbeddedWorker(settings, svc.queue)
        svc.queue.on_webhook.append(webhooks.deliver_in_background(svc.store, settings, threading.Event()))
        worker.start()
    print(f"unlearn: serving on http://{settings.host}:{settings.port} (docs at /docs)", file=sys.stderr, flush=True)
    stops = [worker.stop] if worker is not None else []
    app = create_app(settings, services=svc, on_shutdown=stops)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def _check_compiler(settings: Any) -> None:
    """UNLEARN_COMPILE=on with no C++ compiler is refused at start, not by every job."""
    if settings.compile == "on":
        from worker.erasure import require_compiler

        require_compiler()


def _worker(args: argparse.Namespace) -> int:
    from app.settings import get_settings

    settings = get_settings()
    if not settings.broker_url:
        print(
            "unlearn: UNLEARN_BROKER_URL is not set; a worker needs a broker (e.g. redis://127.0.0.1:6379/0)",
            file=sys.stderr,
        )
        return 2
    _check_compiler(settings)
    from worker.celery_app import celery

    argv = ["worker", f"--loglevel={args.loglevel}", "--concurrency=1", "--pool=prefork", "-Q", settings.queue_name]
    celery.worker_main(argv + (["--hostname", args.hostname] if args.hostname else []))
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from app import db
    from app.settings import get_settings

    db.migrate(get_settings().db_url)
    print("unlearn: the job store is at the newest schema", file=sys.stderr)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from app import db, keys
    from app.errors import InvalidInput
    from app.settings import get_settings

    settings = get_settings()
    if settings.db_url.startswith("sqlite"):
        db.migrate(settings.db_url)
    engine = db.connect(settings.db_url)
    try:
        key = keys.create(db.sessions(engine), args.tenant)
    except InvalidInput as exc:
        print(f"unlearn: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(key)
    print(f"unlearn: key for tenant {args.tenant!r}; it is shown only this once", file=sys.stderr)
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
    r.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="off",
        help="torch.compile the erasure: pays off in a process that erases many concepts (the worker), "
        "not in one run (default: off; auto = on a CPU)",
    )
    r.add_argument("--report-samples", type=int, default=4, help="samples per report prompt; 0 skips the report")
    r.set_defaults(func=_run)
    sv = sub.add_parser("serve", help="the HTTP API (with no settings: the embedded default, see the README)")
    sv.add_argument("--host", help="address to bind (default UNLEARN_HOST or 127.0.0.1)")
    sv.add_argument("--port", type=int, help="port to bind (default UNLEARN_PORT or 8000)")
    sv.set_defaults(func=_serve)
    w = sub.add_parser("worker", help="a Celery worker that runs erasures (one at a time); needs UNLEARN_BROKER_URL")
    w.add_argument("--loglevel", default="INFO")
    w.add_argument("--hostname", help="Celery node name (default celery@HOST)")
    w.set_defaults(func=_worker)
    m = sub.add_parser("migrate", help="create or upgrade the job store's tables (UNLEARN_DATABASE_URL)")
    m.set_defaults(func=_migrate)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    kc = keys.add_parser("create", help="print a new API key for a tenant (shown once, stored hashed)")
    kc.add_argument("--tenant", required=True)
    kc.set_defaults(func=_keys_create)
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
    try:
        return int(args.func(args))
    except ValueError as exc:  # pydantic's ValidationError is one: settings from the environment
        if args.command == "run":
            raise
        print(f"unlearn: {_one_paragraph(exc)}", file=sys.stderr)
        return 2


def _one_paragraph(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return "invalid settings (UNLEARN_* environment variables): " + "; ".join(problems)
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
