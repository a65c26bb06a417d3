"""``cairn``: serve the registry over MCP, and browse, test and change it by hand.

    cairn serve [--http [--host H] [--port P] [--token T]]   MCP over stdio (default) or streamable HTTP
    cairn list [--json]                 every tool: name, version, status, updated, description
    cairn show NAME                     metadata, source, examples (and problems when disabled)
    cairn history NAME                  every version with commit, author, date, message
    cairn diff NAME A B                 what changed between versions A and B
    cairn test [NAME ...]               run tools' examples and tests in the sandbox
    cairn search QUERY                  ranked matches
    cairn rollback NAME VERSION         restore VERSION as a new version
    cairn deprecate NAME --reason TEXT  mark deprecated (stays callable)
    cairn delete NAME                   remove the tool in a commit (history keeps it)
    cairn sync [--remote NAME]          pull and push the registry's git remote

Every command takes ``--registry PATH`` (env ``CAIRN_REGISTRY``, default ``./registry``). Errors are one
line on stderr and a non-zero exit status: 1 for a failed operation, 2 for a usage error. Only ``serve``
in stdio mode speaks on stdout, and there only MCP; logs always go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from server import __version__
from server.config import ENVIRONMENT, Settings
from server.errors import CairnError, ConfigError
from server.models import CheckReport

CLI_CLIENT = "cairn-cli"
SEARCH_EMBED_WAIT = 3600.0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="PATH", help="registry folder (env CAIRN_REGISTRY; default ./registry)")
    common.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR (env CAIRN_LOG_LEVEL)")

    parser = argparse.ArgumentParser(
        prog="cairn", description="Cairn: agent-written code kept as tested, versioned MCP tools.",
        epilog="Environment: " + ", ".join(env for env, _, _ in ENVIRONMENT.values()),
    )
    parser.add_argument("--version", action="version", version=f"cairn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", parents=[common], help="serve the registry over MCP (stdio or HTTP)")
    serve.add_argument("--http", action="store_true", help="speak streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", help="HTTP bind address (env CAIRN_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (env CAIRN_PORT; default 8765)")
    serve.add_argument("--token", help="bearer token clients must send (env CAIRN_TOKEN); required off loopback")
    serve.add_argument("--pool-size", type=int, help="warm sandbox workers (env CAIRN_POOL_SIZE; default 2)")
    serve.add_argument("--exposed-tools", type=int,
                       help="registered tools listed first-class (env CAIRN_EXPOSED_TOOLS; default 100)")
    serve.add_argument("--pinned", help="comma-separated tools always listed first (env CAIRN_PINNED)")
    serve.add_argument("--cpu-seconds", type=float, help="CPU seconds per call (env CAIRN_CPU_SECONDS; default 2)")
    serve.add_argument("--wall-seconds", type=float, help="wall seconds per call (env CAIRN_WALL_SECONDS; default 5)")
    serve.add_argument("--memory-mib", type=int, help="worker memory limit in MiB (env CAIRN_MEMORY_MIB; default 256)")
    serve.add_argument("--duplicates", choices=["warn", "refuse", "off"],
                       help="a submission that behaves like an existing tool: warn (default), refuse, or off "
                            "(env CAIRN_DUPLICATES)")
    serve.add_argument("--search", choices=["auto", "lexical", "hybrid"],
                       help="search ranker: auto (hybrid when the semantic extra is installed; default), lexical, or hybrid "
                            "(env CAIRN_SEARCH)")
    serve.add_argument("--watch-interval", type=float,
                       help="seconds between checks for changes made elsewhere (env CAIRN_WATCH_INTERVAL; default 0.5)")

    ls = sub.add_parser("list", parents=[common], help="list every tool")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = sub.add_parser("show", parents=[common], help="show one tool: metadata, source, examples")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")
    history = sub.add_parser("history", parents=[common], help="every version of a tool")
    history.add_argument("name")
    history.add_argument("--json", action="store_true", help="print JSON")
    diff = sub.add_parser("diff", parents=[common], help="diff two versions of a tool")
    diff.add_argument("name")
    diff.add_argument("a", type=int, metavar="A")
    diff.add_argument("b", type=int, metavar="B")
    test = sub.add_parser("test", parents=[common], help="run tools' examples and tests in the sandbox")
    test.add_argument("names", nargs="*", metavar="NAME", help="tools to test (default: all)")
    search = sub.add_parser("search", parents=[common], help="find tools by describing a task")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.add_argument("--search", choices=["auto", "lexical", "hybrid"], metavar="RANKER",
                        help="search ranker: auto (hybrid when the semantic extra is installed; default), lexical, or hybrid "
                            "(env CAIRN_SEARCH)")
    rollback = sub.add_parser("rollback", parents=[common], help="restore an earlier version as a new one")
    rollback.add_argument("name")
    rollback.add_argument("version", type=int)
    deprecate = sub.add_parser("deprecate", parents=[common], help="mark a tool deprecated")
    deprecate.add_argument("name")
    deprecate.add_argument("--reason", required=True, help="why, and what to use instead")
    delete = sub.add_parser("delete", parents=[common], help="delete a tool (history keeps it)")
    delete.add_argument("name")
    sync = sub.add_parser("sync", parents=[common], help="pull and push the registry's git remote")
    sync.add_argument("--remote", default="origin", help="git remote name (default origin)")
    return parser


def _settings(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    flags = {key: getattr(args, key, None) for key in ENVIRONMENT}
    return Settings.resolve(flags, environ)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    environ = dict(os.environ) if environ is None else environ
    try:
        settings = _settings(args, environ)
        logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                            format="%(asctime)s cairn %(levelname)s %(message)s")
        return _run(args, settings)
    except CairnError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`cairn show x | head`): end quietly, as other command-line tools do. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again (Python's documented way).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from server.service import Cairn

    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "sync":
        from server.store import Registry

        report = Registry(settings.registry).sync(args.remote)
        print(_sync_text(report))
        return 0
    verify = "all" if args.command in ("list", "show", "test", "search") else "none"
    with Cairn(dataclasses.replace(settings, pool_size=1)) as cairn:
        cairn.start(verify=verify)
        return COMMANDS[args.command](cairn, args)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from server.app import CairnApp
    from server.service import Cairn

    if args.http and not _is_loopback(settings.host) and not settings.token:
        raise ConfigError(
            f"refusing to serve on {settings.host}: binding off loopback needs a bearer token "
            "(--token or CAIRN_TOKEN), or bind to 127.0.0.1"
        )
    cairn = Cairn(settings)
    cairn.start()
    log = logging.getLogger("cairn")
    log.info("registry %s: %d tool folders; %d tools listed first-class", cairn.registry.root,
             cairn.folder_count(), len(cairn.exposed()))
    app = CairnApp(cairn)
    try:
        if args.http:
            anyio.run(app.serve_http, settings.host, settings.port, settings.token)
        else:
            anyio.run(app.serve_stdio)
    finally:
        cairn.close()
    return 0


def _updated(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M")


def _cmd_list(cairn: Any, args: argparse.Namespace) -> int:
    rows = []
    for tool in cairn.all_tools():
        r = tool.record
        rows.append({
            "name": r.name, "version": r.version, "status": "disabled" if tool.problems else r.status,
            "updated": _updated(tool.changed_ns), "description": r.description, "problems": tool.problems,
        })
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no tools in {cairn.registry.root}")
        return 0
    _table(rows, ["name", "version", "status", "updated", "description"])
    for row in rows:
        for problem in row["problems"]:
            print(f"  {row['name']}: {problem}")
    return 0


def _table(rows: list[dict[str, Any]], columns: list[str], width: int = 60) -> None:
    cells = [[_cell(row[c], width) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _cell(value: Any, width: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_show(cairn: Any, args: argparse.Namespace) -> int:
    info = cairn.describe(args.name)
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return 0
    print(f"{info['name']} v{info['version']} ({info['status']})")
    print(f"  {info['description']}")
    for key in ("signature", "purpose", "deprecation_reason"):
        if info.get(key):
            print(f"  {key}: {info[key]}")
    if info["tags"]:
        print(f"  tags: {', '.join(info['tags'])}")
    for problem in info["problems"]:
        print(f"  problem: {problem}")
    print("\nsource:")
    print(info["source"].rstrip())
    print("\nexamples:")
    for i, example in enumerate(info["examples"]):
        outcome = f"raises {example['raises']}" if "raises" in example else f"-> {json.dumps(example['expected'], ensure_ascii=False)}"
        print(f"  [{i}] {json.dumps(example['args'], ensure_ascii=False)} {outcome}")
    if info["tests"]:
        print("\ntests:")
        print(info["tests"].rstrip())
    return 0


def _cmd_history(cairn: Any, args: argparse.Namespace) -> int:
    versions = cairn.history(args.name)
    if args.json:
        print(json.dumps([v.__dict__ for v in versions], indent=1, ensure_ascii=False))
        return 0
    _table([{"version": v.version, "action": v.action, "commit": v.commit[:12], "date": v.date[:19],
             "author": v.author, "message": v.message.splitlines()[0] if v.message else ""} for v in versions],
           ["version", "action", "commit", "date", "author", "message"])
    return 0


def _cmd_diff(cairn: Any, args: argparse.Namespace) -> int:
    text = cairn.diff(args.name, args.a, args.b)
    print(text.rstrip() if text.strip() else f"versions {args.a} and {args.b} of {args.name} are identical")
    return 0


def _cmd_test(cairn: Any, args: argparse.Namespace) -> int:
    results = cairn.test(args.names or None)
    failed = 0
    for name, result in results.items():
        if isinstance(result, CheckReport) and result.ok:
            print(f"PASS {name}: {result.summary()}")
            continue
        failed += 1
        if isinstance(result, CheckReport):
            print(f"FAIL {name}: {result.summary()}")
            for case in result.failures:
                print(f"     {case.detail}")
        else:
            print(f"FAIL {name}: disabled")
            for problem in result:
                print(f"     {problem}")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_search(cairn: Any, args: argparse.Namespace) -> int:
    if not cairn.wait_for_search(2.0):  # the first hybrid search of a registry embeds it all, once
        print(f"cairn: embedding {cairn.search_backlog()} tools for semantic search (once; cached in the "
              "registry's .cairn/ afterwards)...", file=sys.stderr)
        cairn.wait_for_search(SEARCH_EMBED_WAIT)
    hits = cairn.search(" ".join(args.query), args.limit)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=1, ensure_ascii=False))
        return 0
    if not hits:
        print("no matching tools")
        return 0
    _table([{"score": f"{h.score:.2f}", "name": h.name, "version": h.version, "status": h.status,
             "signature": h.signature, "description": h.description} for h in hits],
           ["score", "name", "version", "status", "signature", "description"], width=50)
    return 0


def _cmd_rollback(cairn: Any, args: argparse.Namespace) -> int:
    result = cairn.rollback(args.name, args.version, client=CLI_CLIENT)
    print(f"{args.name}: version {result['version']} restores version {args.version} (commit {result['commit'][:12]})")
    return 0


def _cmd_deprecate(cairn: Any, args: argparse.Namespace) -> int:
    result = cairn.deprecate(args.name, args.reason, client=CLI_CLIENT)
    print(f"{args.name}: deprecated in version {result['version']} (commit {result['commit'][:12]})")
    return 0


def _cmd_delete(cairn: Any, args: argparse.Namespace) -> int:
    commit = cairn.delete(args.name, client=CLI_CLIENT)
    print(f"{args.name}: deleted in commit {commit[:12]}; `cairn history {args.name}` still shows every version")
    return 0


def _sync_text(report: Any) -> str:
    lines = [f"pulled: {', '.join(report.pulled) or 'nothing'}", f"pushed: {report.pushed} commit(s)"]
    lines += [f"conflict: {c}" for c in report.conflicts]
    lines.append(f"now at {report.head[:12] if report.head else '(empty)'}")
    return "\n".join(lines)


COMMANDS = {
    "list": _cmd_list, "show": _cmd_show, "history": _cmd_history, "diff": _cmd_diff, "test": _cmd_test,
    "search": _cmd_search, "rollback": _cmd_rollback, "deprecate": _cmd_deprecate, "delete": _cmd_delete,
}
