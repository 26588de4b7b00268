"""The README stays true: its tour runs, and its set-up commands are the ones CI runs."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_tour_runs():
    code = re.search(r"## A short tour\n\n```python\n(.*?)```", _readme(), re.S).group(1)
    scope = {}
    exec(compile(code, "README tour", "exec"), scope)  # the project's own README, not data
    assert tuple(scope["faces"].shape) == (2, 6, 3, 128, 128)
    assert tuple(scope["aem"].shape) == (30, 64, 128)
    assert tuple(scope["up"].shape) == (2, 8, 256, 512)


def test_ci_runs_the_readme_test_command():
    setup = re.search(r"## Set-up \(fresh machine\)\n\n```bash\n(.*?)```", _readme(), re.S).group(1)
    install, test = setup.strip().splitlines()
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert test.strip() in ci.splitlines()
    assert "torch==2.13.0" in install and "sphsal " in install
