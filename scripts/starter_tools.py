#!/usr/bin/env python3
"""Author the starter tools into a registry through the same path an agent takes: an MCP client calling
``author_tool`` on a Cairn server (in memory). Each tool gets its commit, examples and generated test.

    .venv/bin/python scripts/starter_tools.py [--registry registry]

Tools that already exist are left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STARTERS = [
    {
        "name": "slugify",
        "description": "Turn a title or phrase into a URL slug: accents dropped, lower-case ASCII words "
                       "joined by a separator ('-' by default).",
        "purpose": "clean URLs and file names from titles",
        "tags": ["text", "url", "slug"],
        "code": '''import re
import unicodedata


def slugify(text: str, separator: str = "-") -> str:
    """Lower-case ASCII slug of text: accents are dropped, every run of other characters becomes one separator."""
    normal = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", normal.lower())
    return separator.join(words)
''',
        "examples": [
            {"args": {"text": "Hello, World!"}, "expected": "hello-world"},
            {"args": {"text": "Crème Brûlée Recipe", "separator": "_"}, "expected": "creme_brulee_recipe"},
            {"args": {"text": "  --  "}, "expected": ""},
        ],
    },
    {
        "name": "parse_duration",
        "description": "Parse a human duration such as '1h30m', '2 days 4 hours', '90s', '1.5h' or '01:30:00' "
                       "into a number of seconds.",
        "purpose": "turn durations written by people into seconds",
        "tags": ["time", "duration", "parse"],
        "code": '''import re

UNITS = {
    "w": 604800, "week": 604800, "weeks": 604800,
    "d": 86400, "day": 86400, "days": 86400,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
}


def parse_duration(text: str) -> float:
    """Seconds in a duration like '1h30m', '2 days, 4 hours', '1.5h', '45' (seconds) or 'HH:MM:SS' / 'MM:SS'."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("empty duration")
    if re.fullmatch(r"\\d+(:\\d{1,2}){1,2}(\\.\\d+)?", cleaned):
        total = 0.0
        for part in cleaned.split(":"):
            total = total * 60 + float(part)
        return total
    if re.fullmatch(r"\\d+(\\.\\d+)?", cleaned):
        return float(cleaned)
    total = 0.0
    position = 0
    for match in re.finditer(r"(\\d+(?:\\.\\d+)?)\\s*([a-z]+)[\\s,]*(?:and\\s+)?", cleaned):
        if match.start() != position:
            raise ValueError("cannot read " + repr(text[position:match.start()]))
        unit = match.group(2)
        if unit not in UNITS:
            raise ValueError("unknown unit " + repr(unit))
        total += float(match.group(1)) * UNITS[unit]
        position = match.end()
    if position != len(cleaned):
        raise ValueError("cannot read " + repr(text[position:]))
    return total
''',
        "examples": [
            {"args": {"text": "1h30m"}, "expected": 5400.0},
            {"args": {"text": "2 days, 4 hours"}, "expected": 187200.0},
            {"args": {"text": "1.5h"}, "expected": 5400.0},
            {"args": {"text": "01:30:00"}, "expected": 5400.0},
            {"args": {"text": "250ms"}, "expected": 0.25},
            {"args": {"text": "3 fortnights"}, "raises": "ValueError"},
        ],
        "tests": '''def test_minutes_and_seconds_clock():
    assert parse_duration("2:05") == 125.0


def test_plain_number_is_seconds():
    assert parse_duration("45") == 45.0


def test_empty_is_an_error():
    try:
        parse_duration("  ")
    except ValueError:
        return
    assert False, "expected ValueError"
''',
    },
    {
        "name": "summarize_csv_column",
        "description": "Summarize one column of CSV text (with a header row): count, missing values, and for "
                       "numbers min/max/mean/median, for text the most common values.",
        "purpose": "quick look at a column of a CSV export without a spreadsheet",
        "tags": ["csv", "data", "statistics"],
        "code": '''import statistics
from collections import Counter
from typing import Any


def split_row(line: str, delimiter: str) -> list[str]:
    """Split one CSV line, honouring double quotes."""
    cells = []
    cell = ""
    quoted = False
    index = 0
    while index < len(line):
        char = line[index]
        if quoted:
            if char == '"' and index + 1 < len(line) and line[index + 1] == '"':
                cell += '"'
                index += 1
            elif char == '"':
                quoted = False
            else:
                cell += char
        elif char == '"':
            quoted = True
        elif char == delimiter:
            cells.append(cell)
            cell = ""
        else:
            cell += char
        index += 1
    cells.append(cell)
    return cells


def summarize_csv_column(csv_text: str, column: str, delimiter: str = ",") -> dict[str, Any]:
    """Count, missing, and numeric statistics or the top 5 values of one column of CSV text with a header."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no header row")
    header = [name.strip() for name in split_row(lines[0], delimiter)]
    if column not in header:
        raise KeyError("no column " + repr(column) + "; columns: " + ", ".join(header))
    position = header.index(column)
    values = []
    for line in lines[1:]:
        cells = split_row(line, delimiter)
        values.append(cells[position].strip() if position < len(cells) else "")
    present = [v for v in values if v != ""]
    summary = {"column": column, "count": len(values), "missing": len(values) - len(present)}
    numbers = []
    for value in present:
        try:
            numbers.append(float(value))
        except ValueError:
            numbers = None
            break
    if present and numbers is not None:
        summary["type"] = "number"
        summary["min"] = min(numbers)
        summary["max"] = max(numbers)
        summary["mean"] = round(statistics.fmean(numbers), 6)
        summary["median"] = statistics.median(numbers)
    else:
        summary["type"] = "text"
        summary["distinct"] = len(set(present))
        summary["top"] = [[value, count] for value, count in Counter(present).most_common(5)]
    return summary
''',
        "examples": [
            {"args": {"csv_text": "name,age\nAda,36\nAlan,41\nGrace,\n", "column": "age"},
             "expected": {"column": "age", "count": 3, "missing": 1, "type": "number", "min": 36.0,
                          "max": 41.0, "mean": 38.5, "median": 38.5}},
            {"args": {"csv_text": "city;country\nParis;FR\nLyon;FR\n\"Bern\";CH\n", "column": "country",
                      "delimiter": ";"},
             "expected": {"column": "country", "count": 3, "missing": 0, "type": "text", "distinct": 2,
                          "top": [["FR", 2], ["CH", 1]]}},
            {"args": {"csv_text": "a,b\n1,2\n", "column": "c"}, "raises": "KeyError"},
        ],
    },
    {
        "name": "extract_urls",
        "description": "Find every http(s) URL in a text, in order of appearance, without duplicates and "
                       "without trailing punctuation such as a closing parenthesis or full stop.",
        "purpose": "pull links out of notes, emails and chat logs",
        "tags": ["text", "url", "extract", "links"],
        "code": '''import re

URL = re.compile(r"https?://[^\\s<>\\"']+", re.IGNORECASE)


def extract_urls(text: str, unique: bool = True) -> list[str]:
    """Every http/https URL in text, in order; trailing punctuation and unbalanced ')' are trimmed."""
    found = []
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        while url.endswith(")") and url.count(")") > url.count("("):
            url = url[:-1].rstrip(".,;:!?")
        if not unique or url not in found:
            found.append(url)
    return found
''',
        "examples": [
            {"args": {"text": "See https://example.com/a?b=1, and (http://x.org/wiki_(x))."},
             "expected": ["https://example.com/a?b=1", "http://x.org/wiki_(x)"]},
            {"args": {"text": "twice: https://a.io https://a.io", "unique": False},
             "expected": ["https://a.io", "https://a.io"]},
            {"args": {"text": "no links here, just ftp://old.example"}, "expected": []},
        ],
    },
    {
        "name": "convert_units",
        "description": "Convert a quantity between units of length, mass, volume, temperature, speed or data "
                       "size, e.g. 5 'mi' to 'km', 100 'F' to 'C', 2 'gal' (US) to 'l', 3 'GiB' to 'MB'.",
        "purpose": "everyday unit conversions without looking up factors",
        "tags": ["units", "conversion", "measurement"],
        "code": '''FACTORS = {
    "length": {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048,
               "yd": 0.9144, "mi": 1609.344, "nmi": 1852.0},
    "mass": {"mg": 0.000001, "g": 0.001, "kg": 1.0, "t": 1000.0, "oz": 0.028349523125,
             "lb": 0.45359237, "st": 6.35029318},
    "volume": {"ml": 0.001, "cl": 0.01, "l": 1.0, "m3": 1000.0, "tsp": 0.00492892159375,
               "tbsp": 0.01478676478125, "cup": 0.2365882365, "pt": 0.473176473, "qt": 0.946352946,
               "gal": 3.785411784, "imp_gal": 4.54609},
    "speed": {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704, "kn": 1852 / 3600},
    "data": {"b": 1.0, "kb": 1000.0, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 1024.0,
             "mib": 1048576.0, "gib": 1073741824.0, "tib": 1099511627776.0},
}
TEMPERATURES = {"c", "f", "k"}


def to_kelvin(value: float, unit: str) -> float:
    """Kelvin from Celsius, Fahrenheit or Kelvin."""
    if unit == "c":
        return value + 273.15
    if unit == "f":
        return (value - 32) * 5 / 9 + 273.15
    return value


def from_kelvin(value: float, unit: str) -> float:
    """Celsius, Fahrenheit or Kelvin from Kelvin."""
    if unit == "c":
        return value - 273.15
    if unit == "f":
        return (value - 273.15) * 9 / 5 + 32
    return value


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """value in from_unit expressed in to_unit, rounded to 10 significant digits; units are case-insensitive."""
    source = from_unit.strip().lower()
    target = to_unit.strip().lower()
    if source in TEMPERATURES and target in TEMPERATURES:
        return float(f"{from_kelvin(to_kelvin(value, source), target):.10g}")
    for kind, table in FACTORS.items():
        if source in table and target in table:
            return float(f"{value * table[source] / table[target]:.10g}")
    known = sorted(TEMPERATURES) + sorted(u for table in FACTORS.values() for u in table)
    raise ValueError("cannot convert " + from_unit + " to " + to_unit + "; known units: " + ", ".join(known))
''',
        "examples": [
            {"args": {"value": 5, "from_unit": "mi", "to_unit": "km"}, "expected": 8.04672},
            {"args": {"value": 100, "from_unit": "F", "to_unit": "C"}, "expected": 37.77777778},
            {"args": {"value": 2, "from_unit": "gal", "to_unit": "l"}, "expected": 7.570823568},
            {"args": {"value": 3, "from_unit": "GiB", "to_unit": "MB"}, "expected": 3221.225472},
            {"args": {"value": 1, "from_unit": "kg", "to_unit": "km"}, "raises": "ValueError"},
        ],
    },
    {
        "name": "business_days_between",
        "description": "Count working days (Monday to Friday) from a start date up to, but not including, an "
                       "end date, both ISO 'YYYY-MM-DD', optionally skipping listed holidays.",
        "purpose": "deadlines and SLAs counted in working days",
        "tags": ["dates", "calendar", "business days", "working days"],
        "code": '''import datetime


def business_days_between(start: str, end: str, holidays: list[str] = []) -> int:
    """Weekdays in [start, end) minus the given holiday dates; negative when end is before start."""
    first = datetime.date.fromisoformat(start)
    last = datetime.date.fromisoformat(end)
    sign = 1
    if last < first:
        first, last, sign = last, first, -1
    skip = {datetime.date.fromisoformat(day) for day in holidays}
    days = (last - first).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(rest):
        if (first + datetime.timedelta(days=weeks * 7 + offset)).weekday() < 5:
            count += 1
    count -= sum(1 for day in skip if first <= day < last and day.weekday() < 5)
    return sign * count
''',
        "examples": [
            {"args": {"start": "2024-03-01", "end": "2024-03-15"}, "expected": 10},
            {"args": {"start": "2024-12-23", "end": "2025-01-02", "holidays": ["2024-12-25", "2025-01-01"]},
             "expected": 6},
            {"args": {"start": "2024-03-15", "end": "2024-03-01"}, "expected": -10},
            {"args": {"start": "2024-02-30", "end": "2024-03-01"}, "raises": "ValueError"},
        ],
    },
]


async def author_all(registry: Path) -> None:
    from mcp import Client
    from mcp_types import Implementation

    from server.app import CairnApp
    from server.config import Settings
    from server.service import Cairn

    with Cairn(Settings(registry=registry)) as cairn:
        cairn.start(verify="none")
        app = CairnApp(cairn)
        async with Client(app.server, mode="legacy",
                          client_info=Implementation(name="cairn-starter-tools", version="1")) as client:
            for tool in STARTERS:
                if tool["name"] in {t.name for t in cairn.all_tools()}:
                    print(f"{tool['name']}: already there", file=sys.stderr)
                    continue
                result = await client.call_tool("author_tool", tool)
                if result.is_error:
                    raise SystemExit(f"{tool['name']}: {result.content[0].text}")
                reply = result.structured_content
                print(f"{reply['name']} v{reply['version']}: {reply['checks']} ({reply['commit'][:12]})",
                      file=sys.stderr)


def main() -> int:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", type=Path, default=ROOT / "registry")
    args = parser.parse_args()
    anyio.run(author_all, args.registry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
