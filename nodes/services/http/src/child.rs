//! Child processes a service starts (training workers, a distributed model's
//! layer nodes) die with the service, even a SIGKILLed one, so a restarted
//! service never finds orphans still running.

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
    // async-signal-safe syscalls, allocating nothing (see `evospike_launch::die_with_parent`).
    unsafe {
        command.pre_exec(move || evospike_launch::die_with_parent(service));
    }
}
