//! Writing results to stdout line by line, so that a reader sees every line as
//! soon as it is known, and a closed pipe (`| head`) ends the command quietly.

use std::io::{self, Write};

/// Line-oriented stdout.
#[derive(Debug)]
pub(crate) struct Out {
    stdout: io::Stdout,
}

impl Out {
    pub(crate) fn new() -> Out {
        Out {
            stdout: io::stdout(),
        }
    }

    /// Writes `text` and a newline, and flushes.
    pub(crate) fn line(&mut self, text: impl std::fmt::Display) -> io::Result<()> {
        let mut lock = self.stdout.lock();
        writeln!(lock, "{text}")?;
        lock.flush()
    }

    /// Writes `text` as it is (terminal control sequences included), and flushes.
    pub(crate) fn raw(&mut self, text: &str) -> io::Result<()> {
        let mut lock = self.stdout.lock();
        lock.write_all(text.as_bytes())?;
        lock.flush()
    }
}

/// Whether an error chain ends in a closed stdout.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_in_a_chain() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing a line");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("something else")));
    }
}
