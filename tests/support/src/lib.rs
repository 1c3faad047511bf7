//! Test support shared by evospike's tests.
