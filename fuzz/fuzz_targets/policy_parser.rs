//! The policy loader on arbitrary text (`warden::fuzzing::policy_parser`): accepted, or rejected with located
//! errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden::fuzzing::policy_parser(data));
