"""Check the search / duplicate-detection evaluation set in this folder.

    .venv/bin/python tests/search_eval/validate_dataset.py [--quick] [--no-sandbox]

Static checks (trusted side, on the source text only):
  * the .jsonl files are what build_dataset.py makes from src/ (nothing edited by hand and forgotten);
  * every tool and every submission passes ``server.validate.check_submission``;
  * their code imports only allowed modules and uses no name starting with '_';
  * tool names are unique, submission names never reuse a tool name;
  * at least 300 tools, 20 domains, 40 families of close relatives (a family = 2+ tools);
  * at least 150 queries, 45 of each kind; every expected tool exists; a paraphrase shares no word
    with the expected tool's name or description; a near-miss targets a tool that has relatives;
  * at least 40 duplicates and 20 look-alikes; the tool each one is compared with exists and has a
    signature of the same shape (same number of parameters, same JSON types in order).

Sandbox checks (the tools' code only ever runs in ``server.sandbox.Sandbox``, never in this process):
  * every example of every tool and submission gives its expected value;
  * a duplicate and its existing tool pass each other's examples (arguments mapped by position);
  * an existing tool fails at least one example of each look-alike that resembles it;
  * (unless --quick) among all tools with the same parameter types, a duplicate passes both ways with its
    target only, a look-alike with none, and no two tools pass each other's examples.

Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from server.errors import SubmissionRejected  # noqa: E402
from server.models import Example  # noqa: E402
from server.validate import analyse, check_submission  # noqa: E402

MIN_TOOLS, MIN_DOMAINS, MIN_FAMILIES = 300, 20, 40
MIN_QUERIES, MIN_PER_KIND = 150, 45
MIN_DUPLICATES, MIN_LOOKALIKES = 40, 20
KINDS = ("paraphrase", "task", "near_miss")
ALLOWED_MODULES = {
    "math", "statistics", "json", "re", "datetime", "itertools", "functools", "collections", "string",
    "decimal", "fractions", "random", "hashlib", "base64", "textwrap", "unicodedata", "difflib", "heapq",
    "bisect", "html", "urllib.parse", "urllib", "typing",
}
STOPWORDS = set(
    "a an the of to in on for and or with by from into is are be as at it its this that these those i me my "
    "we you your how what which do does can get give turn make any all each one some so than then there "
    "not no but if when where who whom whose why will would should could need want have has had was were "
    "been being our out up down over under about also just only very more most less such own same other "
    "e g eg ie per via".split()
)


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.notes: list[str] = []

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)


def load(name: str) -> list[dict]:
    rows = []
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{name}:{number}: not JSON: {exc}")
    return rows


# --- words, for the paraphrase rule ---------------------------------------------------------------

def stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                continue
            return word[: len(word) - len(suffix)] + keep
    return word


def words(text: str) -> set[str]:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text).lower().replace("_", " ")
    return {stem(w) for w in re.findall(r"[a-z]+", text) if w not in STOPWORDS and len(w) > 1}


# --- normalised-source fingerprint ---------------------------------------------------------------

def fingerprint(code: str) -> str:
    """The product's own normalised-source fingerprint (server/duplicates.py), so the dataset's clones are
    clones by the same definition author_tool uses."""
    from server.duplicates import fingerprint as product_fingerprint

    return product_fingerprint(code, "") or ""


# --- static checks --------------------------------------------------------------------------------

def code_problems(code: str) -> list[str]:
    """Imports outside the allowed list and names starting with '_' (the sandbox refuses both)."""
    problems = []
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_MODULES:
                    problems.append(f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.module not in ALLOWED_MODULES:
                problems.append(f"imports from {node.module}")
        names = []
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.arg):
            names.append(node.arg)
        elif isinstance(node, ast.alias):
            names.append(node.asname or node.name)
        for name in names:
            if name.startswith("_"):
                problems.append(f"uses the name {name!r}")
        if isinstance(node, ast.ClassDef):
            problems.append(f"defines a class {node.name!r} (plain functions only)")
    return sorted(set(problems))


def check_one(kind: str, item: dict, report: Report, tags: list[str] | None = None):
    label = f"{kind} {item.get('name')!r}"
    try:
        submission = check_submission(name=item.get("name"), description=item.get("description"),
                                      code=item.get("code"), examples=item.get("examples"), tags=tags)
    except SubmissionRejected as exc:
        report.fail(f"{label}: rejected by check_submission: {exc}")
        return None
    for problem in code_problems(item["code"]):
        report.fail(f"{label}: {problem}")
    count = len(item["examples"])
    if not 2 <= count <= 6:
        report.fail(f"{label}: {count} examples (want 2 to 6)")
    return submission


def shape(signature) -> list[str]:
    """The JSON types of the parameters, in order, without defaults."""
    out = []
    for p in signature.parameters:
        schema = {k: v for k, v in p.schema.items() if k != "default"}
        out.append(json.dumps(schema, sort_keys=True))
    return out


def static_checks(tools: list[dict], queries: list[dict], dups: list[dict], report: Report) -> dict:
    stats: dict = {}
    names = Counter(t["name"] for t in tools)
    for name, n in names.items():
        if n > 1:
            report.fail(f"tool name {name!r} used {n} times")
    by_name = {t["name"]: t for t in tools}
    signatures = {}
    for tool in tools:
        for key in ("name", "description", "code", "examples", "tags", "domain"):
            if key not in tool:
                report.fail(f"tool {tool.get('name')!r}: missing key {key!r}")
        submission = check_one("tool", tool, report, tool.get("tags"))
        if submission is not None:
            signatures[tool["name"]] = submission.signature
    domains = Counter(t.get("domain") for t in tools)
    families = defaultdict(list)
    for tool in tools:
        if tool.get("family"):
            families[tool["family"]].append(tool["name"])
    real_families = {f: m for f, m in families.items() if len(m) >= 2}
    for family, members in families.items():
        if len(members) < 2:
            report.fail(f"family {family!r} has a single member {members}")
    stats.update(tools=len(tools), domains=len(domains), families=len(real_families),
                 family_members=sum(len(m) for m in real_families.values()), domain_counts=domains)
    if len(tools) < MIN_TOOLS:
        report.fail(f"{len(tools)} tools; at least {MIN_TOOLS} wanted")
    if len(domains) < MIN_DOMAINS:
        report.fail(f"{len(domains)} domains; at least {MIN_DOMAINS} wanted")
    if len(real_families) < MIN_FAMILIES:
        report.fail(f"{len(real_families)} families of relatives; at least {MIN_FAMILIES} wanted")

    kinds = Counter()
    seen_queries = set()
    for q in queries:
        text, expected, kind = q.get("query", ""), q.get("expected"), q.get("kind")
        label = f"query {text!r}"
        if kind not in KINDS:
            report.fail(f"{label}: unknown kind {kind!r}")
        kinds[kind] += 1
        if text.lower() in seen_queries:
            report.fail(f"{label}: written twice")
        seen_queries.add(text.lower())
        if expected not in by_name:
            report.fail(f"{label}: expected tool {expected!r} does not exist")
            continue
        tool = by_name[expected]
        if kind == "paraphrase":
            shared = words(text) & (words(tool["name"]) | words(tool["description"]))
            if shared:
                report.fail(f"{label}: a paraphrase shares {sorted(shared)} with {expected}'s name/description")
        if kind == "near_miss" and len(families.get(tool.get("family") or "", [])) < 2:
            report.fail(f"{label}: near-miss target {expected} has no family of relatives")
    stats.update(queries=len(queries), kinds=dict(kinds),
                 query_tools=len({q.get("expected") for q in queries}),
                 query_domains=len({by_name[q.get("expected")]["domain"] for q in queries
                                    if q.get("expected") in by_name}))
    if len(queries) < MIN_QUERIES:
        report.fail(f"{len(queries)} queries; at least {MIN_QUERIES} wanted")
    for kind in KINDS:
        if kinds[kind] < MIN_PER_KIND:
            report.fail(f"{kinds[kind]} {kind} queries; at least {MIN_PER_KIND} wanted")

    sub_names = Counter(d.get("submission", {}).get("name") for d in dups)
    for name, n in sub_names.items():
        if n > 1:
            report.fail(f"submission name {name!r} used {n} times")
        if name in by_name:
            report.fail(f"submission name {name!r} is also a tool name (that would be an update, not a new tool)")
    n_dup = n_look = 0
    for d in dups:
        sub = d["submission"]
        target = d.get("duplicate_of") or d.get("resembles")
        label = f"submission {sub.get('name')!r}"
        if d.get("duplicate_of") is not None:
            n_dup += 1
            if d.get("resembles") not in (None, d["duplicate_of"]):
                report.fail(f"{label}: 'resembles' and 'duplicate_of' disagree")
        else:
            n_look += 1
        if not d.get("note"):
            report.fail(f"{label}: no note saying why")
        if target not in by_name:
            report.fail(f"{label}: compared tool {target!r} does not exist")
            continue
        submission = check_one("submission", sub, report)
        if submission is None or target not in signatures:
            continue
        if shape(submission.signature) != shape(signatures[target]):
            report.fail(f"{label}: signature {submission.signature.text} does not match "
                        f"{signatures[target].text}")
    stats.update(duplicates=n_dup, lookalikes=n_look)
    clones = [d for d in dups if d.get("kind") == "clone"]
    caught = 0
    for d in clones:
        target = by_name.get(d["duplicate_of"])
        if target and fingerprint(d["submission"]["code"]) == fingerprint(target["code"]):
            caught += 1
        else:
            report.fail(f"clone {d['submission']['name']}: its fingerprint differs from {d['duplicate_of']}'s")
    others = [d for d in dups if d.get("kind") != "clone" and d.get("resembles") in by_name
              and fingerprint(d["submission"]["code"]) == fingerprint(by_name[d["resembles"]]["code"])]
    for d in others:
        report.fail(f"submission {d['submission']['name']} ({d.get('kind')}) has the same fingerprint as "
                    f"{d['resembles']}; mark it as a clone or change the implementation")
    stats.update(clones=len(clones), clones_caught=caught)
    tool_prints = Counter(fingerprint(t["code"]) for t in tools)
    for t in tools:
        if tool_prints[fingerprint(t["code"])] > 1:
            report.fail(f"tool {t['name']} shares its fingerprint with another tool")
    if n_dup < MIN_DUPLICATES:
        report.fail(f"{n_dup} duplicates; at least {MIN_DUPLICATES} wanted")
    if n_look < MIN_LOOKALIKES:
        report.fail(f"{n_look} look-alikes; at least {MIN_LOOKALIKES} wanted")
    stats["signatures"] = signatures
    return stats


# --- sandbox checks -------------------------------------------------------------------------------

def examples_of(raw: list[dict]) -> list[Example]:
    out = []
    for item in raw:
        if "raises" in item:
            out.append(Example(args=item["args"], raises=item["raises"]))
        else:
            out.append(Example(args=item["args"], expected=item["expected"]))
    return out


def remap(raw: list[dict], source, target) -> list[dict]:
    """Examples written for ``source``'s parameters, renamed positionally to ``target``'s."""
    names = {p.name: q.name for p, q in zip(source.parameters, target.parameters)}
    return [{**item, "args": {names.get(k, k): v for k, v in item["args"].items()}} for item in raw]


def describe(report) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in report.failures)[:600]


def passes(sb, code: str, name: str, raw: list[dict], source, target) -> bool:
    """Does tool (code, name) with signature ``target`` give every result of ``raw`` (written for ``source``)?"""
    return sb.check(code, name, examples_of(remap(raw, source, target)), None).ok


def sandbox_checks(tools: list[dict], dups: list[dict], signatures: dict, report: Report, scan: bool) -> dict:
    from server.config import Limits
    from server.sandbox import Sandbox

    stats = Counter()
    by_name = {t["name"]: t for t in tools}
    groups = defaultdict(list)
    for tool in tools:
        if tool["name"] in signatures:
            groups[tuple(shape(signatures[tool["name"]]))].append(tool)
    started = time.monotonic()
    with Sandbox(Limits(), pool_size=2) as sb:
        for tool in tools:
            result = sb.check(tool["code"], tool["name"], examples_of(tool["examples"]), None)
            ok, total = result.count("example")
            stats["tool_examples"] += total
            stats["tool_examples_ok"] += ok
            if not result.ok:
                report.fail(f"tool {tool['name']}: {describe(result)}")
        for d in dups:
            sub = d["submission"]
            result = sb.check(sub["code"], sub["name"], examples_of(sub["examples"]), None)
            ok, total = result.count("example")
            stats["submission_examples"] += total
            stats["submission_examples_ok"] += ok
            if not result.ok:
                report.fail(f"submission {sub['name']}: {describe(result)}")
            target = d.get("duplicate_of") or d.get("resembles")
            if target not in by_name or target not in signatures:
                continue
            try:
                sub_sig = analyse(sub["code"], sub["name"])
            except SubmissionRejected:
                continue
            existing = by_name[target]
            forward = sb.check(existing["code"], target,
                               examples_of(remap(sub["examples"], sub_sig, signatures[target])), None)
            if d.get("duplicate_of") is not None:
                backward = sb.check(sub["code"], sub["name"],
                                    examples_of(remap(existing["examples"], signatures[target], sub_sig)), None)
                if forward.ok and backward.ok:
                    stats["duplicates_confirmed"] += 1
                else:
                    if not forward.ok:
                        report.fail(f"duplicate {sub['name']}: {target} fails its examples: {describe(forward)}")
                    if not backward.ok:
                        report.fail(f"duplicate {sub['name']}: fails {target}'s examples: {describe(backward)}")
            else:
                if forward.ok:
                    report.fail(f"look-alike {sub['name']}: {target} passes all its examples, so nothing "
                                "tells them apart by behaviour")
                else:
                    stats["lookalikes_confirmed"] += 1
            if not scan:
                continue
            # Against every tool of the same shape: a duplicate must match its target only, a look-alike none.
            matches = []
            for tool in groups.get(tuple(shape(sub_sig)), []):
                sig = signatures[tool["name"]]
                if (passes(sb, tool["code"], tool["name"], sub["examples"], sub_sig, sig)
                        and passes(sb, sub["code"], sub["name"], tool["examples"], sig, sub_sig)):
                    matches.append(tool["name"])
            extra = [m for m in matches if m != d.get("duplicate_of")]
            if extra:
                report.fail(f"submission {sub['name']}: also passes both ways with {extra}")
        if scan:
            # No two tools of the registry may pass each other's examples: each tool is distinct by behaviour.
            for group in groups.values():
                for i, a in enumerate(group):
                    for b in group[i + 1:]:
                        sa, sb_sig = signatures[a["name"]], signatures[b["name"]]
                        stats["tool_pairs_scanned"] += 1
                        if (passes(sb, a["code"], a["name"], b["examples"], sb_sig, sa)
                                and passes(sb, b["code"], b["name"], a["examples"], sa, sb_sig)):
                            report.fail(f"tools {a['name']} and {b['name']} pass each other's examples "
                                        "(add an example that tells them apart)")
    stats["seconds"] = round(time.monotonic() - started, 1)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-sandbox", action="store_true", help="static checks only")
    parser.add_argument("--quick", action="store_true",
                        help="skip the scans of every same-signature pair (about a minute)")
    args = parser.parse_args()
    tools, queries, dups = load("tools.jsonl"), load("queries.jsonl"), load("duplicates.jsonl")
    report = Report()
    if (HERE / "src").is_dir():
        sys.path.insert(0, str(HERE))
        import build_dataset

        for name, rows in build_dataset.build().items():
            if (HERE / name).read_text(encoding="utf-8") != build_dataset.render(rows):
                report.fail(f"{name} is out of date with src/: run tests/search_eval/build_dataset.py")
    stats = static_checks(tools, queries, dups, report)
    print(f"tools: {stats['tools']} in {stats['domains']} domains; {stats['families']} families of relatives "
          f"({stats['family_members']} tools in families)")
    print("domains: " + ", ".join(f"{d} {n}" for d, n in sorted(stats["domain_counts"].items())))
    per_kind = ", ".join(f"{k} {stats['kinds'].get(k, 0)}" for k in KINDS)
    print(f"queries: {stats['queries']} ({per_kind}); "
          f"{stats['query_tools']} distinct expected tools in {stats['query_domains']} domains")
    print(f"submissions: {stats['duplicates']} duplicates ({stats['clones']} exact clones, "
          f"{stats['clones_caught']} matched by the normalised-source fingerprint), {stats['lookalikes']} look-alikes")
    static_failures = len(report.failures)
    print(f"static checks: {'ok' if not static_failures else f'{static_failures} problem(s)'}")
    sandbox_ran = False
    if args.no_sandbox:
        print("sandbox checks: skipped (--no-sandbox)")
    else:
        try:
            import server.sandbox  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - the sandbox module may not exist yet
            report.fail(f"sandbox checks not run: cannot import server.sandbox: {type(exc).__name__}: {exc}")
        else:
            try:
                sstats = sandbox_checks(tools, dups, stats["signatures"], report, scan=not args.quick)
                sandbox_ran = True
            except Exception as exc:  # noqa: BLE001 - report a broken sandbox, do not crash
                report.fail(f"sandbox checks aborted: {type(exc).__name__}: {exc}")
    if sandbox_ran:
        print(f"sandbox: tool examples {sstats['tool_examples_ok']}/{sstats['tool_examples']} passed; "
              f"submission examples {sstats['submission_examples_ok']}/{sstats['submission_examples']} passed")
        print(f"sandbox: duplicates confirmed both ways {sstats['duplicates_confirmed']}/{stats['duplicates']}; "
              f"look-alikes told apart {sstats['lookalikes_confirmed']}/{stats['lookalikes']}")
        if args.quick:
            print("sandbox: same-signature scans skipped (--quick)")
        else:
            print(f"sandbox: scanned {sstats['tool_pairs_scanned']} same-signature tool pairs and every "
                  f"submission against all tools of its signature")
        print(f"sandbox: {sstats['seconds']} s")
    for line in report.failures:
        print("FAIL " + line)
    print("OK" if not report.failures else f"{len(report.failures)} problem(s)")
    return 0 if not report.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
