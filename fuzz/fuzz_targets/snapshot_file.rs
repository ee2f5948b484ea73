//! A snapshot file's bytes through the checked reader.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_storage::fuzz::snapshot_file(data);
});
