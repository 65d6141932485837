/// What went wrong, so a caller can choose an exit status: a user's input or model
/// ([`ErrorKind::BadInput`]), an op the runtime has no kernel for ([`ErrorKind::Unsupported`]),
/// or a bug in temblor itself ([`ErrorKind::Internal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadInput,
    Unsupported,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuntimeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RuntimeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> RuntimeError {
        RuntimeError::new(ErrorKind::BadInput, message)
    }

    pub fn unsupported(message: impl Into<String>) -> RuntimeError {
        RuntimeError::new(ErrorKind::Unsupported, message)
    }

    pub fn internal(message: impl Into<String>) -> RuntimeError {
        RuntimeError::new(ErrorKind::Internal, message)
    }

    /// The same error with `context` (usually the node it happened at) in front.
    pub fn context(self, context: &str) -> RuntimeError {
        RuntimeError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

/// An op without a kernel is a limit the model runs into, not a temblor bug: like a bad input,
/// it is the user's to act on (exit 2).
impl From<RuntimeError> for temblor_ir::Error {
    fn from(e: RuntimeError) -> temblor_ir::Error {
        match e.kind {
            ErrorKind::BadInput | ErrorKind::Unsupported => temblor_ir::Error::BadInput(e.message),
            ErrorKind::Internal => temblor_ir::Error::Internal(e.message),
        }
    }
}
