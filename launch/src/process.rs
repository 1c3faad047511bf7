//! Starting one node process so that it can never outlive the launcher, and
//! signalling it.
//!
//! Each child leads its own process group (so Ctrl-C in the terminal reaches
//! only the launcher, which then stops the nodes in order, and so a signal
//! reaches the node's own children too), and asks the kernel to SIGKILL it
//! when the launcher dies (`PR_SET_PDEATHSIG`), which covers even a SIGKILLed
//! launcher.

use std::io;
use std::process::Stdio;

use crate::plan::NodeSpec;

/// Spawns `spec`'s program with piped stdout/stderr and null stdin.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, so
/// call this from a thread that lives as long as the supervision (the
/// supervisor runs on one current-thread runtime for this reason).
pub(crate) fn spawn(spec: &NodeSpec) -> io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let launcher = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec; it only makes
    // async-signal-safe syscalls and allocates nothing (see `die_with_parent`).
    unsafe {
        command.pre_exec(move || die_with_parent(launcher));
    }
    command.spawn()
}

/// In a child between fork and exec (`CommandExt::pre_exec`): ask for SIGKILL
/// when `parent` (the process that forked it) dies. `Err` when the parent has
/// already died, so that no orphan starts. Async-signal-safe; allocates nothing.
/// The launcher, the training service, the inference service and the
/// data-parallel coordinator start their children with it.
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; it touches no memory of ours.
    let set = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if set == -1 {
        return Err(io::Error::last_os_error());
    }
    // If the parent died between fork and prctl, the death signal was
    // missed: do not start an orphan. (`from_raw_os_error` does not allocate.)
    // SAFETY: getppid cannot fail and has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Sends `signal` to the process group led by `pgid`. A group that no longer
/// exists is not an error (the node ended meanwhile).
pub(crate) fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // killpg(0 or 1) would hit the launcher's own group or everything.
        return;
    }
    // SAFETY: killpg has no memory-safety preconditions; failure (ESRCH) is fine.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Human name of a signal number, for messages.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}
