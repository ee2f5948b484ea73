//! Harness for end-to-end tests (see issue 7).
