#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scimtrail_fuzzing::exchange(data));
