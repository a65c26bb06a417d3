import statistics
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
