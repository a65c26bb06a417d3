FACTORS = {
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
