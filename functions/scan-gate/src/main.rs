//! scan-gate Lambda. Not built yet: it answers every event with a skipped outcome that says so, and does nothing else.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use warden::WardenError;
use warden::outcome::{Outcome, not_implemented};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Outcome, WardenError>(not_implemented("scan-gate", &event.payload))
    }))
    .await
}
