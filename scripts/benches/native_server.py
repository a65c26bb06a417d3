"""The baseline for the server bench: a plain ``MCPServer`` with the bench's functions written natively.

``scripts/benches/server.py`` imports ``make_server`` for the in-memory rows and runs this file as a
subprocess (``python native_server.py``, stdio) for the stdio rows. The functions' source is shared with
the bench, which authors the very same source into Cairn through ``author_tool``, so both servers run the
same code; here it is executed in-process by the SDK (``@native.tool()``), there in Cairn's sandbox.
"""

from __future__ import annotations

from mcp.server import MCPServer

SLUGIFY = '''
import re
import unicodedata


def slugify(text: str, separator: str = "-") -> str:
    """Lower-case ASCII slug of text: accents dropped, runs of other characters become one separator."""
    normal = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", normal.lower())
    return separator.join(words)
'''

SUM_SQUARES = '''
def sum_squares(n: int) -> int:
    """Sum of i * i for i from 0 below n, with a plain loop."""
    total = 0
    for i in range(n):
        total += i * i
    return total
'''

FUNCTIONS = {
    "slugify": (SLUGIFY, "Turn text into a URL slug.", [
        {"args": {"text": "Hello, World!"}, "expected": "hello-world"},
        {"args": {"text": "Crème Brûlée", "separator": "_"}, "expected": "creme_brulee"},
    ]),
    "sum_squares": (SUM_SQUARES, "Sum of the squares below n.", [
        {"args": {"n": 4}, "expected": 14},
        {"args": {"n": 0}, "expected": 0},
    ]),
}
"""name -> (source, description, examples): what the bench authors into Cairn and defines here."""

CALLS = {"slugify": {"text": "Crème Brûlée at the Café, 2024 edition!"}, "sum_squares": {"n": 1000}}
"""The arguments every timed call uses, for both servers."""


def make_server() -> MCPServer:
    native = MCPServer("native-baseline", log_level="WARNING")
    for name, (source, description, _examples) in FUNCTIONS.items():
        namespace: dict[str, object] = {}
        exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102  (the bench's own source)
        native.tool(description=description)(namespace[name])  # type: ignore[arg-type]
    return native


if __name__ == "__main__":
    make_server().run("stdio")
