//! The deployment files pass their schema validators: `scripts/check-deploy`
//! (promtool on the Prometheus config, rules and rule unit tests; the
//! compose-spec schema on docker-compose.yml; the Kubernetes API schemas on
//! deploy/k8s). Its tools come from `scripts/ci-deploy-deps`; without them
//! this test fails and names that step, it is never skipped.

use std::process::Command;

#[test]
fn scripts_check_deploy_passes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/check-deploy"))
        .current_dir(root)
        .output()
        .expect("run scripts/check-deploy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/check-deploy failed (its tools come from `scripts/ci-deploy-deps`):\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("all deployment checks passed"), "{stderr}");
    for checked in ["SUCCESS:", "ok -- validation done", "statefulset/smsgate"] {
        assert!(
            stdout.contains(checked),
            "check-deploy output lacks {checked:?}:\n{stdout}"
        );
    }
}
