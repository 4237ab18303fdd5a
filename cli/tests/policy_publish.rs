//! `warden policy publish` against the local stack (WARDEN_TEST_ENDPOINT): an invalid file is refused with its
//! errors and nothing is uploaded; a valid one lands in S3 / SSM and is read back unchanged.

use std::process::Command;

fn warden(args: &[&str]) -> std::process::Output {
    let endpoint = std::env::var("WARDEN_TEST_ENDPOINT").expect(
        "WARDEN_TEST_ENDPOINT: the local stack's endpoint (scripts/test sets it), so this never passes vacuously",
    );
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run warden")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{}-{nanos:x}", std::process::id())
}

#[test]
fn only_a_valid_policy_is_published_and_it_reads_back_unchanged() {
    let dir = std::env::temp_dir().join(unique("warden-publish-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let valid = dir.join("warden.toml");
    std::fs::write(&valid, include_str!("../../warden.toml")).expect("write");
    let invalid = dir.join("broken.toml");
    std::fs::write(&invalid, "version = 1\ndefault-class = \"nope\"\n").expect("write");
    let parameter = format!("/{}/policy", unique("warden-"));
    let to = format!("ssm:{parameter}");

    let refused = warden(&["policy", "publish", invalid.to_str().expect("path"), "--to", &to]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("not published") && stderr.contains("broken.toml:2"), "{stderr}");
    let read = warden(&["policy", "publish", valid.to_str().expect("path"), "--to", &to]);
    let stdout = String::from_utf8_lossy(&read.stdout);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert!(stdout.contains(&format!("published {to}")) && stdout.contains("parameter version 1"), "{stdout}");
    assert!(stdout.contains("read back unchanged"), "{stdout}");

    // S3: a missing bucket is an error naming the source; once it exists, the object is published.
    let bucket = unique("warden-policies-").to_lowercase();
    let to = format!("s3://{bucket}/ecr-warden/warden.toml");
    let missing = warden(&["policy", "publish", valid.to_str().expect("path"), "--to", &to]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && stderr.contains(&format!("{to}: not published")), "{stderr}");
    create_bucket(&bucket);
    let published = warden(&["policy", "publish", valid.to_str().expect("path"), "--to", &to]);
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    assert!(stdout.contains(&format!("published {to}")) && stdout.contains("read back unchanged"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

fn create_bucket(bucket: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let endpoint = std::env::var("WARDEN_TEST_ENDPOINT").expect("endpoint");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        s3.create_bucket().bucket(bucket).send().await.expect("bucket");
    });
}
