//! No code: this crate only names features of the dependencies ael and
//! native-tools share (see its Cargo.toml), so that building either payload
//! package alone compiles those dependencies with the same features, and a
//! build of both compiles each of them once.
