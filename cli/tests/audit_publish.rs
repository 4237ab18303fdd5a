//! `warden audit --security-hub` when Security Hub cannot be reached: the report is still printed (it was read),
//! and the command fails (exit 2) saying the publication failed. Against the local stack (WARDEN_TEST_ENDPOINT),
//! with Security Hub's endpoint pointed at a closed port.

use std::process::Command;

#[test]
fn a_failed_publication_still_prints_the_report_and_exits_2() {
    let endpoint = std::env::var("WARDEN_TEST_ENDPOINT").expect(
        "WARDEN_TEST_ENDPOINT: the local stack's endpoint (scripts/test sets it), so this never passes vacuously",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "--json", "--security-hub"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ENDPOINT_URL_SECURITYHUB", format!("http://127.0.0.1:{closed_port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run warden");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("could not publish to Security Hub: us-east-1:"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report, as JSON");
    assert_eq!(report["schema"], "ecr-warden.audit/v1");
}
