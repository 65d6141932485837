//! The one error type of the compiler and CLI. The variant decides the exit code: a user's
//! mistake or a bad model file is 2, everything else 1.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible (bad flag value, wrong input name).
    #[error("{0}")]
    Usage(String),
    /// The model or an input file is missing, unreadable, corrupt, or uses what temblor lacks.
    #[error("{0}")]
    BadInput(String),
    /// Anything else: a failure in temblor itself or the machine.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::BadInput(_) => 2,
            Error::Internal(_) => 1,
        }
    }

    pub fn bad_input(msg: impl Into<String>) -> Error {
        Error::BadInput(msg.into())
    }

    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Error {
        Error::Internal(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
