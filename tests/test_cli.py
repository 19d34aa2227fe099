"""The `siamgpt-jax` entry point itself: version, help that describes the tool, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from siamgpt_jax import __version__
from siamgpt_jax.cli import SUBCOMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"siamgpt-jax {__version__}"


def test_help_describes_the_tool_not_its_internals(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Thai" in text and "Qwen3" in text and "--debug" in text and "--version" in text
    for name in ("demo", "verify", "train", "import-hf", "export-hf", "mesh"):  # no library names or formats
        help_text = SUBCOMMANDS[name][1]
        assert not any(word in help_text.lower() for word in ("orbax", "safetensors", "->", "mesh-layout")), help_text


def test_a_user_error_is_one_line_without_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "siamgpt_jax.cli", "train", "--config", str(tmp_path / "no.yaml")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
                                                               "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "config file not found" in proc.stderr and "no.yaml" in proc.stderr


def test_the_project_errors_a_user_can_fix_share_one_base_class():
    from siamgpt_jax.config import ConfigError
    from siamgpt_jax.convert.errors import CheckpointError
    from siamgpt_jax.corpus.pipeline import InvalidInputError
    from siamgpt_jax.corpus.records import RecordError
    from siamgpt_jax.corpus.registry import KwargsError, UnknownInstructionError
    from siamgpt_jax.errors import UserError
    from siamgpt_jax.loader.chat import ChatFormatError
    from siamgpt_jax.model.config import UnsupportedConfigError
    from siamgpt_jax.parallel.mesh import MeshError
    from siamgpt_jax.sharding import ShardingRuleError
    from siamgpt_jax.train.run_folder import RunFolderError

    for cls in (ConfigError, CheckpointError, InvalidInputError, RecordError, KwargsError, UnknownInstructionError,
                ChatFormatError, UnsupportedConfigError, MeshError, ShardingRuleError, RunFolderError):
        assert issubclass(cls, UserError), cls
    assert issubclass(InvalidInputError, RuntimeError)  # what callers caught before still matches
