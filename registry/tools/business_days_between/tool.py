import datetime


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
