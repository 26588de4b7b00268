"""``sphsal bench``: run one of the side-by-side benchmark scripts of a source checkout.

``sphsal bench conv --quick`` runs ``benchmarks/bench_conv.py --quick``; arguments after the name go to
the script. The scripts live in the repository's ``benchmarks/`` folder (next to the ``sphsal``
package of an editable install, or the current folder).
"""

from __future__ import annotations

import os
import subprocess
import sys

import sphsal


def benchmark_dir() -> str | None:
    """The ``benchmarks/`` folder of the source checkout, or ``None`` when there is none."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(sphsal.__file__)))
    candidates = [os.path.join(checkout, "benchmarks"), os.path.join(os.getcwd(), "benchmarks")]
    return next((d for d in candidates if os.path.isdir(d)), None)


def available() -> list[str]:
    folder = benchmark_dir()
    if folder is None:
        return []
    names = os.listdir(folder)
    return sorted(n[len("bench_"):-3] for n in names if n.startswith("bench_") and n.endswith(".py"))


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark script (conv, projections, audio, ...)",
                              description=__doc__)
    p.add_argument("name", help="benchmark name: " + (", ".join(available()) or "(no benchmarks/ found)"))
    rest = p.add_argument("args", nargs="...",
                          help="arguments for the script (e.g. --quick, --json out.json)")
    rest.required = False  # argparse makes every "..." positional required ("required: name, args")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = benchmark_dir()
    if folder is None:
        raise FileNotFoundError("the benchmark scripts are in the source repository's benchmarks/ folder; "
                                "run sphsal bench from a checkout (or an editable install)")
    script = os.path.join(folder, f"bench_{args.name}.py")
    if not os.path.exists(script):
        raise ValueError(f"unknown benchmark {args.name!r}; available: {', '.join(available())}")
    # The script imports the same sphsal as this process, installed or not.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(sphsal.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return subprocess.call([sys.executable, script, *args.args], env=env)
