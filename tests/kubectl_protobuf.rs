//! The commands for which kubectl v1.35 sends protobuf request bodies
//! (`Content-Type: application/vnd.kubernetes.protobuf`), against the real
//! apiserver: `create namespace`, `create deployment`, and `drain`, whose
//! pod deletions carry protobuf DeleteOptions. Each command runs with `-v=8`
//! so the test can see that the body really was protobuf.

mod support;

use support::{Cluster, skip_reason};

/// Did kubectl's `-v=8` log show a `method` request sent with a protobuf
/// body? Each request is logged as a `"Request" verb=... headers=<` line
/// followed by one indented line per header and a closing `>`.
fn sent_protobuf(stderr: &str, method: &str) -> bool {
    let opening = format!("\"Request\" verb=\"{method}\"");
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if !line.contains(&opening) {
            continue;
        }
        for header in lines.by_ref() {
            if !header.starts_with(char::is_whitespace) || header.trim() == ">" {
                break;
            }
            if header.trim() == "Content-Type: application/vnd.kubernetes.protobuf" {
                return true;
            }
        }
    }
    false
}

/// Runs a kubectl command at `-v=8`; returns stdout and stderr, failing the
/// test on a non-zero exit.
fn kubectl_logged(cluster: &Cluster, args: &[&str]) -> (String, String) {
    let mut all = vec!["-v=8"];
    all.extend_from_slice(args);
    let out = cluster.kubectl(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn kubectl_commands_that_send_protobuf_bodies_work() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("proto");
    let node = cluster.node.clone();

    // create namespace: a protobuf v1 Namespace.
    let (stdout, stderr) = kubectl_logged(&cluster, &["create", "namespace", "proto-x"]);
    assert!(stdout.contains("namespace/proto-x created"), "{stdout}");
    assert!(
        sent_protobuf(&stderr, "POST"),
        "no protobuf POST in:\n{stderr}"
    );
    let namespaces = cluster.kubectl_ok(&["get", "ns", "proto-x"]);
    assert!(namespaces.contains("Active"), "{namespaces}");

    // create deployment: a protobuf apps/v1 Deployment.
    let (stdout, stderr) = kubectl_logged(
        &cluster,
        &[
            "create",
            "deployment",
            "d",
            "--image=coxswain/web:0.1",
            "-n",
            "proto-x",
        ],
    );
    assert!(stdout.contains("deployment.apps/d created"), "{stdout}");
    assert!(
        sent_protobuf(&stderr, "POST"),
        "no protobuf POST in:\n{stderr}"
    );
    let image = cluster.kubectl_ok(&[
        "get",
        "deployment",
        "d",
        "-n",
        "proto-x",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.spec.selector.matchLabels.app}",
    ]);
    assert_eq!(image, "coxswain/web:0.1 d");

    // The deployment's pod runs on the node.
    cluster.wait_for("the deployment's pod to run", 90, || {
        let phases = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "proto-x",
            "-l",
            "app=d",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        (phases.trim() == "Running").then_some(())
    });

    // drain: cordon, then DELETE each pod with protobuf DeleteOptions.
    let (stdout, stderr) = kubectl_logged(
        &cluster,
        &[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--pod-selector=app=d",
            "--timeout=60s",
        ],
    );
    assert!(
        stdout.contains(&format!("node/{node} drained")),
        "{stdout}\n{stderr}"
    );
    assert!(
        sent_protobuf(&stderr, "DELETE"),
        "no protobuf DELETE in:\n{stderr}"
    );
    let unschedulable =
        cluster.kubectl_ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(unschedulable, "true");

    // The replacement pod stays pending while the node is cordoned; after
    // uncordon it runs again.
    cluster.kubectl_ok(&["uncordon", &node]);
    cluster.wait_for("the replacement pod to run", 90, || {
        let phases = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "proto-x",
            "-l",
            "app=d",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        (phases.trim() == "Running").then_some(())
    });
    cluster.kubectl_ok(&["delete", "namespace", "proto-x", "--wait=false"]);
}
