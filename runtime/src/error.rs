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
