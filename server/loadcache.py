"""A disposable cache of what verification derives from a tool's source, so a restart recompiles nothing
that did not change.

``<registry>/.cairn/load-cache.json`` (private state, never committed) maps a source key (a hash of
``tool.py`` and the tests, the recorded schema hashes, the sandbox policy version and the Python version)
to what verification found: the signature, the problems (empty for a runnable tool) and the normalised
source fingerprint duplicate detection uses.

It is never authoritative: a key that differs means the tool is analysed and recompiled again; a missing,
unreadable or foreign-format cache means everything is. Deleting it is always safe. (Records themselves
are not cached: the store reads 10,000 tools in well under a second, faster than decoding them again.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from server.models import NO_VALUE, ToolRecord
from server.validate import Parameter, Signature

log = logging.getLogger("cairn")

FORMAT = 3


def source_key(record: ToolRecord, policy_version: int) -> str:
    """What verification depends on: the source, the tests, the sandbox policy and the Python version."""
    digest = hashlib.sha256(record.code.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + (record.tests or "").encode("utf-8", "surrogatepass"))
    return f"{digest.hexdigest()}:{policy_version}:{sys.version_info[0]}.{sys.version_info[1]}"


class LoadCache:
    """Verification results by source key, persisted as one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.verified: dict[str, tuple[Signature | None, list[str], str | None]] = {}
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> LoadCache:
        cache = cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                return cache
            for key, entry in data["verified"].items():
                sig = _signature(entry["signature"]) if entry["signature"] is not None else None
                cache.verified[key] = (sig, list(entry["problems"]), entry.get("fingerprint"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a cache: start over rather than fail
            log.info("ignoring unreadable load cache %s: %s", path, exc)
            cache.verified.clear()
        return cache

    def merge(self, other: LoadCache) -> None:
        """Take ``other``'s entries, keeping this cache's own where both have one (they are newer)."""
        for key, value in other.verified.items():
            self.verified.setdefault(key, value)

    def put_verified(self, key: str, signature: Signature | None, problems: list[str],
                     fingerprint: str | None = None) -> None:
        self.verified[key] = (signature, list(problems), fingerprint)
        self.dirty = True

    def save(self, live_keys: set[str] | None = None) -> None:
        """Write atomically; ``live_keys`` drops verification entries of sources no tool has any more."""
        if not self.dirty:
            return
        verified = self.verified if live_keys is None else {k: v for k, v in self.verified.items() if k in live_keys}
        data = {
            "format": FORMAT,
            "verified": {k: {"signature": _signature_json(sig) if sig else None, "problems": p, "fingerprint": f}
                         for k, (sig, p, f) in verified.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as exc:  # losing the cache costs only a slower start
            log.debug("could not write %s: %s", self.path, exc)


def _signature_json(s: Signature) -> dict[str, Any]:
    params = []
    for p in s.parameters:
        item: dict[str, Any] = {"name": p.name, "annotation": p.annotation, "schema": p.schema, "required": p.required}
        if p.default is not NO_VALUE:
            item["default"] = p.default
        params.append(item)
    return {"name": s.name, "parameters": params, "return_annotation": s.return_annotation,
            "return_schema": s.return_schema, "docstring": s.docstring}


def _signature(d: dict[str, Any]) -> Signature:
    params = tuple(
        Parameter(p["name"], p["annotation"], p["schema"], p["required"], p.get("default", NO_VALUE))
        for p in d["parameters"]
    )
    return Signature(d["name"], params, d["return_annotation"], d["return_schema"], d["docstring"])
