"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json


def parse_key_values(pairs: list[str] | None, flag: str) -> dict:
    """``["a=1", "b=x", "c=[1,2]"]`` -> ``{"a": 1, "b": "x", "c": [1, 2]}`` (values parsed as JSON when
    they are valid JSON, else kept as strings)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def add_model_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--model", required=required, help="registered model name (see `sphsal models`)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="keyword argument for the model factory (repeatable)")


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="360av-hm", help="dataset adapter name (default: 360av-hm)")
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                        help="keyword option for the dataset adapter (repeatable), e.g. split=test")
