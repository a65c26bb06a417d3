import re
import unicodedata


def slugify(text: str, separator: str = "-") -> str:
    """Lower-case ASCII slug of text: accents are dropped, every run of other characters becomes one separator."""
    normal = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", normal.lower())
    return separator.join(words)
