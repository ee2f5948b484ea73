//! A node directory whose snapshot file holds these bytes, through Storage::open.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    raft_storage::fuzz::open_with_snapshot(dir.path(), data);
});
