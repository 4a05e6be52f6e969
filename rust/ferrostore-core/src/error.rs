//! The error type shared by the core.
//!
//! Each variant maps onto exactly one class of `ferrostore.errors` in the binding crate,
//! so messages must name the offending value and what was expected.

use std::path::Path;

/// Every failure the core reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A named object (view, feature, entity) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object exists already and the call would not replace it.
    #[error("{0}")]
    AlreadyExists(String),
    /// An argument has the wrong type, shape or value.
    #[error("{0}")]
    InvalidArgument(String),
    /// Data does not match a declared schema (missing column, wrong type, null key).
    #[error("{0}")]
    SchemaMismatch(String),
    /// The state changed underneath the caller; retrying may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The store reached its map size; the transaction was aborted.
    #[error("{0}")]
    StorageFull(String),
    /// The underlying storage failed (path, permissions, I/O, corruption).
    #[error("{0}")]
    Storage(String),
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an LMDB error with what was being done and where.
    pub(crate) fn lmdb(err: heed::Error, doing: &str, path: &Path) -> Self {
        use heed::MdbError;
        match err {
            heed::Error::Mdb(MdbError::MapFull) => Error::StorageFull(format!(
                "online store at '{}' is full while {doing}: the LMDB map size was reached; \
                 nothing of this batch was written (open the store with a larger map_size)",
                path.display()
            )),
            heed::Error::Mdb(MdbError::MapResized) => Error::Conflict(format!(
                "online store at '{}' was resized by another process while {doing}; retry",
                path.display()
            )),
            heed::Error::Mdb(MdbError::ReadersFull) => Error::Storage(format!(
                "online store at '{}' has no free reader slots while {doing}",
                path.display()
            )),
            heed::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Error::Storage(format!(
                    "permission denied on online store at '{}' while {doing}: {io}",
                    path.display()
                ))
            }
            other => Error::Storage(format!(
                "online store at '{}' failed while {doing}: {other}",
                path.display()
            )),
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(err: arrow_schema::ArrowError) -> Self {
        Error::SchemaMismatch(err.to_string())
    }
}
