import re

URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


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
