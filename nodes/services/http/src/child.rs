//! Child processes a service starts (training workers, a distributed model's
//! layer nodes) die with the service, even a SIGKILLed one, so a restarted
//! service never finds orphans still running.

use std::io;

/// Makes `command`'s process receive SIGKILL when the service dies
/// (`PR_SET_PDEATHSIG`); a child whose service died between fork and `prctl`
/// does not start at all.
///
/// Spawn it from a thread that lives as long as the service (a Tokio worker
/// thread, not a `spawn_blocking` one): the signal fires when the thread that
/// forked the child ends.
pub fn die_with_service(command: &mut tokio::process::Command) {
    let service = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe syscalls, allocating nothing (see `in_child`).
    unsafe {
        command.pre_exec(move || in_child(service));
    }
}

/// In the child between fork and exec: ask for SIGKILL when the service dies.
fn in_child(service: libc::pid_t) -> io::Result<()> {
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
    // The service died between fork and prctl: do not start an orphan.
    // SAFETY: getppid cannot fail and has no preconditions.
    if unsafe { libc::getppid() } != service {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}
