"""Cairn's one error tree. Domain modules raise these; ``app.py`` and ``cli.py`` translate them.

    CairnError                      anything Cairn reports to a caller; ``str(exc)`` is the message
    ├── ConfigError                 a setting or flag cannot be used (bad value, unsafe bind)
    ├── SubmissionRejected          a submitted tool failed validation or its checks; ``.problems``
    ├── ToolNotFound                no tool of that name (or that version) in the registry
    ├── ToolUnavailable             the tool exists but is disabled (broken) and does not run
    ├── VersionConflict             an update's base_version is not the current version
    ├── ToolFailed                  a sandboxed run ended in an error the agent can act on
    │   ├── ToolRaised              the tool's own code raised (``ZeroDivisionError: ... (line 3)``)
    │   └── LimitExceeded           a limit stopped it (timeout, memory, output or result size)
    ├── SandboxUnavailable          a worker could not be started or answered garbage
    └── StoreError                  git or the file system failed under the registry
        └── SyncConflict            ``cairn sync`` could not reconcile with the remote cleanly

Messages name what was wrong and, where there is one, what to do. Two channels: what the agent can fix
comes back to it as a tool error result (``isError``); protocol misuse is a protocol error.
"""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error Cairn reports to a caller."""


class ConfigError(CairnError):
    """A setting, flag or environment variable cannot be used."""


class SubmissionRejected(CairnError):
    """A submission failed: every problem at once, each naming its line or example."""

    def __init__(self, problems: list[str], *, summary: str = "the tool was not saved") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"{summary}; {len(self.problems)} problem(s):\n{lines}")


class ToolNotFound(CairnError):
    def __init__(self, name: str, detail: str | None = None) -> None:
        self.name = name
        super().__init__(detail or f"no tool named {name!r}; search_tools lists what exists")


class ToolUnavailable(CairnError):
    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = list(problems)
        super().__init__(
            f"tool {name!r} is disabled and does not run: " + "; ".join(problems)
            + " (update it with author_tool and base_version, or roll it back)"
        )


class VersionConflict(CairnError):
    def __init__(self, name: str, base_version: int | None, current_version: int, commit: str) -> None:
        self.name = name
        self.base_version = base_version
        self.current_version = current_version
        self.commit = commit
        if base_version is None:
            msg = (
                f"tool {name!r} already exists at version {current_version} (commit {commit[:12]}); "
                f"to change it, pass base_version={current_version}"
            )
        else:
            msg = (
                f"tool {name!r} is at version {current_version} (commit {commit[:12]}), not {base_version}; "
                f"read it with get_tool, then resubmit with base_version={current_version}"
            )
        super().__init__(msg)


class ToolFailed(CairnError):
    """A sandboxed run failed in a way the agent can act on."""

    printed: str = ""
    """What the code printed before it failed (empty when the worker had to be killed)."""


class ToolRaised(ToolFailed):
    type_names: list[str]
    """The exception's class name and its base classes' names (``raises`` examples match any of them)."""
    where: str | None = None
    """``"tool"``, ``"tests"`` or ``"snippet"``: whose code raised."""
    tests_line: int | None = None

    def __init__(self, type_name: str, message: str, line: int | None = None) -> None:
        self.type_names = [type_name]
        self.type_name = type_name
        self.message = message
        self.line = line
        where = f" (line {line})" if line else ""
        super().__init__(f"{type_name}: {message}{where}" if message else f"{type_name}{where}")


class LimitExceeded(ToolFailed):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class SandboxUnavailable(CairnError):
    """The sandbox could not serve a call (a worker would not start or broke the protocol)."""


class StoreError(CairnError):
    """Git or the file system failed under the registry."""


class SyncConflict(StoreError):
    """``cairn sync`` met a change it could not reconcile without losing one side."""
