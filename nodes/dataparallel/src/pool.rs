//! The worker processes a coordinator started itself (`evospike train
//! --workers K`): it spawns them, notices when one exits, kills one that fell
//! behind, and starts a replacement.
//!
//! Each worker dies with the coordinator (`PR_SET_PDEATHSIG`, as the training
//! service's workers do), so a coordinator killed with SIGKILL leaves no worker
//! computing for nobody. The death signal fires when the *thread* that forked the
//! worker ends: spawn and respawn from the thread that trains.

use std::io;
use std::process::{Child, Command, ExitStatus};

/// Builds the command that starts worker `index`.
pub type CommandFor = Box<dyn Fn(usize) -> Command + Send>;

/// Worker processes by index.
pub struct Pool {
    command: CommandFor,
    children: Vec<Option<Child>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts workers `0..count`, each with `command(index)`.
    ///
    /// # Errors
    /// A worker could not be started (the ones started are killed).
    pub fn spawn(count: usize, command: CommandFor) -> io::Result<Pool> {
        let mut pool = Pool {
            command,
            children: (0..count).map(|_| None).collect(),
        };
        for index in 0..count {
            pool.respawn(index)?;
        }
        Ok(pool)
    }

    /// The process IDs, `None` for a worker not running.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.children
            .iter()
            .map(|c| c.as_ref().map(Child::id))
            .collect()
    }

    /// Workers that have exited since the last call, with how they ended.
    pub fn exited(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut gone = Vec::new();
        for (index, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot {
                if let Ok(Some(status)) = child.try_wait() {
                    gone.push((index, status));
                    *slot = None;
                }
            }
        }
        gone
    }

    /// Kills worker `index` (if it runs) and starts a new one in its place.
    ///
    /// # Errors
    /// The new worker could not be started.
    pub fn respawn(&mut self, index: usize) -> io::Result<()> {
        self.kill(index);
        let mut command = (self.command)(index);
        let coordinator = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe syscalls (prctl, getppid), allocating nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                evospike_launch::die_with_parent(coordinator)
            });
        }
        self.children[index] = Some(command.spawn()?);
        Ok(())
    }

    /// Kills worker `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children.get_mut(index).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }
}
