"""python -m bench.top_frames PROFILE: the frames a py-spy speedscope profile spent its samples in.

`python -m bench --profile bench/out/ingest-profile.json` samples the server's workers during batch
ingest; this prints, as a Markdown table, the share of samples that had each frame on the stack
(inclusive) and at its top (self), for seenby's own frames or those matching --match."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


def shares(profile: dict) -> tuple[float, Counter[str], Counter[str]]:
    """Total sampled time, and the time of the samples holding each function (whatever its line)
    anywhere on the stack / on top."""
    functions = [f"{f['name']} ({Path(f.get('file') or '?').name})" for f in profile["shared"]["frames"]]
    total, inclusive, on_top = 0.0, Counter[str](), Counter[str]()
    for thread in profile["profiles"]:
        for stack, weight in zip(thread["samples"], thread["weights"], strict=True):
            total += weight
            for function in {functions[frame] for frame in stack}:
                inclusive[function] += weight
            if stack:
                on_top[functions[stack[-1]]] += weight
    return total, inclusive, on_top


@app.command()
def main(
    profile: Annotated[Path, typer.Argument(help="A speedscope file written by py-spy.")],
    match: Annotated[str, typer.Option(help="Only frames whose file contains this.")] = "service/",
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 25,
) -> None:
    document = json.loads(profile.read_text())
    files = {f"{f['name']} ({Path(f.get('file') or '?').name})": f.get("file") or ""
             for f in document["shared"]["frames"]}
    total, inclusive, on_top = shares(document)
    typer.echo(f"{total:.1f} s sampled\n\n| inclusive | self | function |\n| --- | --- | --- |")
    chosen = [f for f, _ in inclusive.most_common() if match in files[f]]
    for function in chosen[:limit]:
        share, own = 100 * inclusive[function] / total, 100 * on_top[function] / total
        typer.echo(f"| {share:.1f} % | {own:.1f} % | `{function}` |")


if __name__ == "__main__":
    app()
