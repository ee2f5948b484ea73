//! A state machine image through KvStore::restore, then entries applied to what restored.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_kv::fuzz::snapshot(data);
});
