//! A log entry's command decoded and applied.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_kv::fuzz::command(data);
});
