#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitstream_fuzz::catalog_parse(data));
