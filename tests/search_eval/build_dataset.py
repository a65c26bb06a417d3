"""Build tools.jsonl, duplicates.jsonl and queries.jsonl from the hand-written sources in src/.

    .venv/bin/python tests/search_eval/build_dataset.py

The sources are easier to write and review than JSON with code in strings:

    @@ tool_name                      starts a record
    domain: units                     key: value lines (tools: domain, family, tags, description;
    family: temperature               submissions: duplicate_of (a tool or null), resembles, note,
                                      description)
    tags: temperature, conversion
    description: One or two sentences.
    example: {"celsius": 100} => 212.0          args JSON, then '=>' and the expected JSON ...
    example: {"text": ""} !! ValueError         ... or '!!' and the exception it raises
    code:                             everything after this line, up to the next '@@', is the source
    def tool_name(celsius: float) -> float:
        ...

A submission whose note starts with 'clone' is written out with kind 'clone' (same code, renamed);
other duplicates get kind 'behaviour', and duplicate_of: null gives kind 'look-alike'.

Queries live in src/queries.txt, one per line: ``kind | expected_tool | query text``.
Nothing here runs the tools' code: validate_dataset.py checks it in the sandbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
DECODER = json.JSONDecoder()


def parse_example(text: str, where: str) -> dict:
    args, end = DECODER.raw_decode(text)
    rest = text[end:].strip()
    if rest.startswith("=>"):
        expected, end2 = DECODER.raw_decode(rest[2:].strip())
        if rest[2:].strip()[end2:].strip():
            raise ValueError(f"{where}: trailing text after expected value: {rest!r}")
        return {"args": args, "expected": expected}
    if rest.startswith("!!"):
        return {"args": args, "raises": rest[2:].strip()}
    raise ValueError(f"{where}: example needs '=> expected' or '!! Error': {text!r}")


def parse_records(path: Path) -> list[dict]:
    records: list[dict] = []
    current: dict | None = None
    code_lines: list[str] | None = None

    def finish() -> None:
        if current is not None:
            current["code"] = "\n".join(code_lines or []).strip("\n") + "\n"
            records.append(current)

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{number}"
        if line.startswith("@@ "):
            finish()
            current = {"name": line[3:].strip(), "examples": []}
            code_lines = None
            continue
        if current is None:
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"{where}: text before the first '@@' record")
            continue
        if code_lines is not None:
            code_lines.append(line)
            continue
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{where}: expected 'key: value', got {line!r}")
        key, value = key.strip(), value.strip()
        if key == "code":
            code_lines = []
        elif key == "example":
            current["examples"].append(parse_example(value, where))
        elif key == "tags":
            current["tags"] = [t.strip() for t in value.split(",") if t.strip()]
        elif key == "duplicate_of":
            current["duplicate_of"] = None if value in ("null", "none", "") else value
        elif key in ("domain", "family", "description", "note", "resembles"):
            current[key] = value
        else:
            raise ValueError(f"{where}: unknown key {key!r}")
    finish()
    return records


def build() -> dict[str, list[dict]]:
    """The three datasets, as rows, from the sources in src/."""
    tools = []
    for path in sorted(SRC.glob("tools_*.txt")):
        for record in parse_records(path):
            tools.append({
                "name": record["name"],
                "description": record["description"],
                "code": record["code"],
                "examples": record["examples"],
                "tags": record.get("tags", []),
                "domain": record["domain"],
                "family": record.get("family"),
            })
    submissions = []
    for record in parse_records(SRC / "duplicates.txt"):
        submissions.append({
            "submission": {
                "name": record["name"],
                "description": record["description"],
                "code": record["code"],
                "examples": record["examples"],
            },
            "duplicate_of": record["duplicate_of"],
            "resembles": record["duplicate_of"] or record["resembles"],
            "kind": ("look-alike" if record["duplicate_of"] is None
                     else "clone" if record["note"].startswith("clone") else "behaviour"),
            "note": record["note"],
        })
    queries = []
    for number, line in enumerate((SRC / "queries.txt").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, expected, query = (part.strip() for part in line.split("|", 2))
        queries.append({"query": query, "expected": expected, "kind": kind})

    return {"tools.jsonl": tools, "duplicates.jsonl": submissions, "queries.jsonl": queries}


def render(rows: list[dict]) -> str:
    """JSON Lines text, one object per line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> int:
    datasets = build()
    for name, rows in datasets.items():
        (HERE / name).write_text(render(rows), encoding="utf-8")
    counts = ", ".join(f"{len(rows)} in {name}" for name, rows in datasets.items())
    print(f"wrote {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
