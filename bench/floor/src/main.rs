//! The floor a function's cold start is measured against: the same runtime (lambda_runtime on tokio, with the
//! functions' tracing set-up) answering every event with `{"decision": "skipped"}`, and nothing else.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(|_: LambdaEvent<Value>| async { Ok::<_, Error>(json!({"decision": "skipped"})) })).await
}
