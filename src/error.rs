//! The runtime's error: one line for the user, naming what went wrong.

use std::fmt;

#[derive(Debug)]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<ferrun_planner::PlanError> for Error {
    fn from(e: ferrun_planner::PlanError) -> Self {
        Error(e.to_string())
    }
}

/// `Err(Error(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::error::Error(format!($($t)*))) };
}

/// Adds what was being done to an I/O error: `open /x: No such file or directory`.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {}", what(), strip_os_error(&e.to_string()))))
    }
}

/// `No such file or directory (os error 2)` → `No such file or directory`.
fn strip_os_error(s: &str) -> String {
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The C library's text for an errno.
pub fn errno_text(errno: i32) -> String {
    strip_os_error(&std::io::Error::from_raw_os_error(errno).to_string())
}
