//! A WAL segment's bytes through the record scanner; the hardstate file's bytes.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_storage::fuzz::wal_segment(data);
    raft_storage::fuzz::hard_state_file(data);
});
