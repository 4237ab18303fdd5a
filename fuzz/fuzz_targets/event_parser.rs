//! The EventBridge event parser on arbitrary bytes (`warden::fuzzing::event_parser`): an event or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden::fuzzing::event_parser(data));
