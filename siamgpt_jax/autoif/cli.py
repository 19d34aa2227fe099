"""`siamgpt-jax autoif`: synthesise Stream B (Thai AutoIF) from the seeds with a teacher model."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (configs/autoif.yaml); key=value overrides follow")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. mode=registry samples_per_prompt=8")
    p.add_argument("--backend", help="teacher: an OpenAI-compatible URL (http://host:8000/v1#MODEL) or a model "
                                     "folder for the in-process sampler (overrides the config's `backend`)")
    p.add_argument("--replay", action="store_true", help="answer only from the request cache; ask no model")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run generated verifier code without bubblewrap (rlimits only; the report says so)")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")


def run(args: argparse.Namespace) -> int:
    from siamgpt_jax import config as config_lib
    from siamgpt_jax.autoif.config import AutoIFConfig
    from siamgpt_jax.autoif.pipeline import run_autoif
    from siamgpt_jax.errors import UserError

    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"backend={args.backend}")
    if args.replay:
        overrides.append("replay=true")
    if args.unsafe_no_sandbox:
        overrides.append("unsafe_no_sandbox=true")
    cfg = config_lib.load(AutoIFConfig, args.config, overrides)
    backend = None
    if not cfg.replay:
        if not cfg.backend:
            raise UserError("autoif needs a teacher: --backend URL|MODEL_DIR (or backend=... in the config), "
                            "or --replay to answer from an existing request cache")
        from siamgpt_jax.generate.open_backend import is_url, open_backend

        options = {"concurrency": cfg.concurrency} if is_url(cfg.backend) else {}
        if cfg.model and is_url(cfg.backend):
            options["model"] = cfg.model
        backend = open_backend(cfg.backend, **options)
    try:
        result = run_autoif(cfg, backend, progress=not args.no_progress)
    finally:
        if backend is not None:
            backend.close()
    return 0
