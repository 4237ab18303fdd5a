//! The policy loader on arbitrary text: `Policy::from_toml` (what `warden policy check`, `WARDEN_POLICY_FILE`
//! and the embedded `warden.toml` go through) must accept or reject with located errors, never panic. An
//! accepted policy must also summarise itself and classify repository names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::from_toml(text, "fuzz.toml") {
        Ok(policy) => {
            let _ = policy.summary();
            for repository in ["prod/payments-api", "dev/web-frontend", "team-a/x", "sandbox/y", "", "a/b/c"] {
                let _ = policy.classify(repository);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a rejected policy names at least one problem");
            let _ = errors.to_string();
        }
    }
});
