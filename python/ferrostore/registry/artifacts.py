"""A content-addressed artifact store: files kept once under their SHA-256.

Objects live at ``<root>/objects/<first 2 hex>/<sha256>``. A write goes to a temporary file
in the same folder tree and is renamed into place, so a crash never leaves a half-written
object under a valid name and two processes writing the same content are harmless. Which
artifact path of which run maps to which object is kept in the metadata database
(``run_artifacts``), not in the file tree.

Example:
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest, size = store.put_bytes(b"hello")
    >>> store.read_bytes(digest)
    b'hello'
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from ferrostore.errors import InvalidArgument, NotFound, StorageError

__all__ = ["ArtifactStore", "normalize_artifact_path"]

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def normalize_artifact_path(path: str | None, *, allow_empty: bool = True) -> str:
    """Return ``path`` as a clean relative POSIX path ('' for the root).

    Args:
        path: An artifact path such as ``"model/MLmodel"``; ``None`` means the root.
        allow_empty: Whether the root ('' or ``None``) is acceptable.

    Returns:
        The normalized path, without leading or trailing slashes.

    Raises:
        InvalidArgument: The path is absolute, climbs out with ``..`` or is empty when
            ``allow_empty`` is false.
    """
    if path is None:
        path = ""
    if not isinstance(path, str):
        raise InvalidArgument(f"artifact path must be a string, got {path!r}")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts:
        raise InvalidArgument(
            f"artifact path {path!r} must be relative and stay inside the run's artifacts"
        )
    if not parts and not allow_empty:
        raise InvalidArgument(f"artifact path {path!r} is empty; expected e.g. 'model'")
    return "/".join(parts)


class ArtifactStore:
    """Files stored once by content hash under a root folder.

    Args:
        root: The folder (created when missing).

    Raises:
        StorageError: The folder cannot be created.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).expanduser().absolute()
        try:
            (self._root / "objects").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"artifact root {str(self._root)!r} cannot be created: {err}"
            ) from err

    @property
    def root(self) -> Path:
        """The root folder."""
        return self._root

    def object_path(self, digest: str) -> Path:
        """Return the file holding the object ``digest`` (which may not exist).

        Raises:
            InvalidArgument: ``digest`` is not a lowercase hex SHA-256.
        """
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise InvalidArgument(f"artifact digest {digest!r} is not a SHA-256 hex string")
        return self._root / "objects" / digest[:2] / digest

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store the content of a local file; return its SHA-256 and size.

        Raises:
            NotFound: ``path`` is not a readable file.
            StorageError: Writing the object failed.
        """
        source = Path(path)
        if not source.is_file():
            raise NotFound(f"artifact file {str(source)!r} does not exist or is not a file")
        try:
            with open(source, "rb") as handle:
                return self._write(iter(lambda: handle.read(_CHUNK), b""))
        except OSError as err:
            raise StorageError(f"cannot store artifact file {str(source)!r}: {err}") from err

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return its SHA-256 and size.

        Raises:
            StorageError: Writing the object failed.
        """
        return self._write(iter([bytes(data)]))

    def read_bytes(self, digest: str) -> bytes:
        """Return the content of object ``digest``.

        Raises:
            NotFound: No such object (the store was moved or pruned).
        """
        target = self.object_path(digest)
        try:
            return target.read_bytes()
        except FileNotFoundError as err:
            raise NotFound(f"artifact object {digest} is missing from {self._root}") from err

    def _write(self, chunks: object) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        tmp_dir = self._root / "objects"
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:  # type: ignore[attr-defined]
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            digest = hasher.hexdigest()
            target = self.object_path(digest)
            if target.exists():
                os.unlink(tmp_name)
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp_name, target)
            return digest, size
        except OSError as err:
            Path(tmp_name).unlink(missing_ok=True)
            raise StorageError(
                f"cannot write to artifact store {str(self._root)!r}: {err}"
            ) from err
