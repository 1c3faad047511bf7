//! Where node output goes: every line to the terminal as `[name] line`, and to
//! the node's own log file.
//!
//! All writes happen on one thread fed by a channel, one whole line per
//! `write_all`, so lines of different nodes never interleave mid-line and a
//! slow terminal never stalls supervision.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Which pipe of a child a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
enum Message {
    Line {
        node: String,
        stream: Stream,
        line: Vec<u8>,
    },
    Launcher(String),
}

/// A cloneable handle that queues lines for the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct OutputSender {
    tx: mpsc::Sender<Message>,
}

impl OutputSender {
    /// Queues one line (without its newline) of a node.
    pub(crate) fn line(&self, node: &str, stream: Stream, line: Vec<u8>) {
        // A send fails only once the writer is gone, i.e. at the very end; the
        // line has nowhere to go then.
        let _ = self.tx.send(Message::Line {
            node: node.to_owned(),
            stream,
            line,
        });
    }

    /// Queues a message of the launcher itself (`[launch] ...` on stderr and in `launch.log`).
    pub(crate) fn launcher(&self, text: impl Into<String>) {
        let _ = self.tx.send(Message::Launcher(text.into()));
    }
}

/// The writer thread.
#[derive(Debug)]
pub(crate) struct Output {
    sender: OutputSender,
    thread: JoinHandle<()>,
}

impl Output {
    /// Starts the writer; log files are created in `log_dir` (which must exist).
    pub(crate) fn start(log_dir: PathBuf, echo: bool) -> std::io::Result<Output> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("evospike-launch-output".into())
            .spawn(move || Writer::new(log_dir, echo).run(rx))?;
        Ok(Output {
            sender: OutputSender { tx },
            thread,
        })
    }

    pub(crate) fn sender(&self) -> OutputSender {
        self.sender.clone()
    }

    /// Writes what is queued and stops the thread. Lines still queued by
    /// clones of the sender after this are dropped.
    pub(crate) fn finish(self) {
        drop(self.sender);
        // The writer ends when every sender is gone; reader tasks that still
        // hold one finish when their pipe closes. A panic in the writer has
        // already been reported on stderr.
        let _ = self.thread.join();
    }
}

struct Writer {
    log_dir: PathBuf,
    echo: bool,
    files: HashMap<String, Option<File>>,
}

impl Writer {
    fn new(log_dir: PathBuf, echo: bool) -> Self {
        Writer {
            log_dir,
            echo,
            files: HashMap::new(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Message>) {
        for message in rx {
            match message {
                Message::Line { node, stream, line } => self.node_line(&node, stream, &line),
                Message::Launcher(text) => self.launcher_line(&text),
            }
        }
    }

    fn node_line(&mut self, node: &str, stream: Stream, line: &[u8]) {
        let tag = match stream {
            Stream::Stdout => format!("[{node}] "),
            Stream::Stderr => format!("[{node}:err] "),
        };
        if self.echo {
            let mut text = Vec::with_capacity(tag.len() + line.len() + 1);
            text.extend_from_slice(tag.as_bytes());
            text.extend_from_slice(line);
            text.push(b'\n');
            // A closed terminal must not stop supervision; the log file still gets the line.
            let _ = std::io::stdout().lock().write_all(&text);
        }
        let mut record = line.to_vec();
        record.push(b'\n');
        self.append(node, &record);
    }

    fn launcher_line(&mut self, text: &str) {
        if self.echo {
            let _ = writeln!(std::io::stderr().lock(), "[launch] {text}");
        }
        let record = format!("{text}\n");
        self.append("launch", record.as_bytes());
    }

    fn append(&mut self, file_stem: &str, bytes: &[u8]) {
        let log_dir = &self.log_dir;
        let file = self
            .files
            .entry(file_stem.to_owned())
            .or_insert_with(|| open_log(log_dir, file_stem));
        if let Some(f) = file {
            if let Err(e) = f.write_all(bytes) {
                eprintln!("[launch] cannot write log of {file_stem}: {e}; no longer logging it");
                *file = None;
            }
        }
    }
}

fn open_log(dir: &Path, stem: &str) -> Option<File> {
    let path = dir.join(format!("{stem}.log"));
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("[launch] cannot open log file {}: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_per_node_log_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let output = Output::start(dir.path().to_path_buf(), false).unwrap();
        let sender = output.sender();
        sender.line("a", Stream::Stdout, b"one".to_vec());
        sender.line("b", Stream::Stderr, b"two".to_vec());
        sender.line("a", Stream::Stderr, b"three".to_vec());
        sender.launcher("started");
        drop(sender);
        output.finish();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("a.log"), "one\nthree\n");
        assert_eq!(read("b.log"), "two\n");
        assert_eq!(read("launch.log"), "started\n");
    }
}
