//! The EventBridge event parser on arbitrary input: raw bytes as the Lambda runtime would hand them over
//! (UTF-8 text through `parse_str`, any bytes through serde_json's decoder then `parse`). It must return an
//! event or an error, never panic, and whatever it accepts must answer the accessors the handlers use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::event::{Event, EventError};

fn exercise(result: Result<Event, EventError>) {
    match result {
        Ok(event) => {
            let _ = event.kind.name();
            let _ = event.kind.repository().map(ToString::to_string);
            let _ = event.describe();
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        exercise(warden::event::parse_str(text));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        exercise(warden::event::parse(value));
    }
});
