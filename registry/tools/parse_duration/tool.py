import re

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
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}(\.\d+)?", cleaned):
        total = 0.0
        for part in cleaned.split(":"):
            total = total * 60 + float(part)
        return total
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    total = 0.0
    position = 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)\s*([a-z]+)[\s,]*(?:and\s+)?", cleaned):
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
