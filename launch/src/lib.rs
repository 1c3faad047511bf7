//! Launch files and the launcher that supervises node processes.
