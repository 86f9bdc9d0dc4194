"""The README's examples stay true: its two commands and its config file."""

import re
from pathlib import Path

from atlantis.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    lines = [x.split("#")[0].strip() for x in block.group(1).splitlines() if x.strip()]
    assert lines == ["bash scripts/setup.sh && .venv/bin/atlantis demo",
                     "bash scripts/setup.sh && .venv/bin/pytest"]  # fmt: skip
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/setup.sh && .venv/bin/pytest" in ci


def test_readme_config_example_is_a_valid_run_config(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "cub.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    cfg = load_config(path, [])  # unknown keys or bad values would raise
    assert cfg.loop.arms == ["baseline", "naive", "targeted"] and cfg.loop.seeds == 3
    assert cfg.data.scenario.kind == "class_imbalance"
