//! The trace viewer in a real headless Chromium, and kernel-checked pod
//! status, on a real kernel and real Docker.
//!
//! A two-container pod is created through the API; `coxswain trace --serve`
//! starts the loopback proxy that adds the token; Chromium loads the viewer
//! through it and the test reads what the page drew from the DOM (every
//! drawn element names itself in `data-*` attributes). A screenshot is kept
//! as `target/e2e/trace-viewer.png`. Then a container is OOM killed and the
//! kubelet's and the kernel's records of its end are compared, in the page
//! and in `coxswain trace --status`, also after the pod is gone.
//!
//! Needs root, kernel BTF, probes built with clang and Debian's chromium;
//! runs under `cargo xtask test` (COXSWAIN_E2E=1, COXSWAIN_CHROMIUM).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::{Cluster, skip_reason};

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: viewer
spec:
  containers:
  - name: web
    image: coxswain/web:0.1
  - name: sidecar
    image: coxswain/busybox:0.1
    command: ["sleep", "3600"]
"#;

/// A container whose own process (dd, after the exec) runs out of memory.
const HOG: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: coxswain/busybox:0.1
    command: ["sh", "-c", "sleep 3; exec dd if=/dev/zero of=/dev/null bs=64M count=1"]
    resources:
      limits:
        memory: 16Mi
"#;

/// `coxswain trace --serve` for one pod: the proxy, stopped when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn serve(cluster: &Cluster, pod: &str) -> Viewer {
        let mut child = Command::new(bin())
            .arg("trace")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["--pod", pod, "--serve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting coxswain trace --serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "the URL line: {url:?}"
        );
        Viewer { child, url }
    }

    /// The URL of another pod's viewer through the same proxy.
    fn url_of(&self, pod: &str) -> String {
        let (base, _) = self.url.split_once("/proxy/trace/view/").unwrap();
        format!("{base}/proxy/trace/view/{pod}")
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // SIGTERM by pid: the process we started.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn bin() -> String {
    std::env::var("COXSWAIN_BIN").expect("COXSWAIN_BIN is set")
}

fn chromium() -> PathBuf {
    std::env::var_os("COXSWAIN_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"))
}

/// Headless Chromium with a fresh profile, and `extra` arguments.
fn browser(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile).unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--virtual-time-budget=5000")
        .args(extra)
        .arg(url)
        .output()
        .expect("running chromium")
}

/// The DOM the page built, once its script said it is done.
fn dump_dom(cluster: &Cluster, url: &str) -> String {
    let profile = cluster.data_dir.join("chromium-profile");
    let mut last = String::new();
    for _ in 0..5 {
        let out = browser(&profile, &["--dump-dom"], url);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("data-state=\"ready\"") {
            return last;
        }
        eprintln!(
            "chromium: not ready yet: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("the viewer never finished drawing:\n{last}");
}

/// The start tags in `dom` with `name="value"`.
fn tags<'a>(dom: &'a str, name: &str, value: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"{value}\"");
    dom.match_indices(&needle)
        .map(|(at, _)| {
            let start = dom[..at].rfind('<').unwrap();
            let end = at + dom[at..].find('>').unwrap();
            &dom[start..=end]
        })
        .collect()
}

/// The value of attribute `name` in start tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The one drawn step `step` (of `container`, if given), which must have a
/// time.
fn drawn_step<'a>(dom: &'a str, step: &str, container: Option<&str>) -> &'a str {
    let found: Vec<&str> = tags(dom, "data-step", step)
        .into_iter()
        .filter(|t| container.is_none() || attr(t, "data-container") == container)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {step} step of {container:?}: {found:?}"
    );
    let tag = found[0];
    assert_eq!(attr(tag, "data-missing"), None, "{step} is drawn: {tag}");
    assert!(attr(tag, "data-time-ms").is_some(), "{tag}");
    assert!(
        attr(tag, "data-raw").is_some(),
        "hovering shows the record: {tag}"
    );
    tag
}

fn time_of(tag: &str) -> f64 {
    attr(tag, "data-time-ms").unwrap().parse().unwrap()
}

fn coxswain_trace(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("trace")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "coxswain trace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_viewer_draws_a_real_pods_waterfall_ledger_and_kernel_checked_status() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let cluster = Cluster::start("viewer");
    let manifest = cluster.data_dir.join("viewer.yml");
    std::fs::write(&manifest, POD).unwrap();
    cluster.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    cluster.wait_for("the pod to be Ready", 90, || {
        let ready = cluster.kubectl_ok(&[
            "get",
            "pod",
            "viewer",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (ready.trim() == "True").then_some(())
    });

    let viewer = Viewer::serve(&cluster, "default/viewer");
    let dom = cluster.wait_for("every step of the waterfall", 60, || {
        let dom = dump_dom(&cluster, &viewer.url);
        let missing: Vec<String> = tags(&dom, "data-missing", "true")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            return Some(dom);
        }
        eprintln!("steps not drawn yet: {missing:?}");
        None
    });

    // The waterfall: API records, then the kernel's, in order of cause.
    let created = drawn_step(&dom, "created", None);
    let bound = drawn_step(&dom, "bound", None);
    drawn_step(&dom, "scheduled", None);
    let sandbox = drawn_step(&dom, "sandbox", Some("POD"));
    let netns = drawn_step(&dom, "netns", Some("POD"));
    let ready = drawn_step(&dom, "ready", None);
    assert_eq!(attr(sandbox, "data-source"), Some("kernel"));
    assert_eq!(attr(created, "data-source"), Some("api"));
    // API times are whole seconds; kernel times are exact.
    assert!(time_of(created) <= time_of(sandbox));
    assert!(time_of(bound) <= time_of(sandbox) + 1.0);
    assert!(time_of(ready) + 1000.0 >= time_of(netns));
    for container in ["web", "sidecar"] {
        let joined = drawn_step(&dom, "joined", Some(container));
        let exec = drawn_step(&dom, "exec", Some(container));
        assert!(
            time_of(netns) <= time_of(joined),
            "{container} joins after netns"
        );
        assert!(
            time_of(joined) <= time_of(exec),
            "{container} joins, then execs"
        );
    }

    // The ledger: each container shares the pause container's network,
    // IPC and UTS namespaces and has its own mount and pid namespaces.
    for container in ["web", "sidecar"] {
        let rows = tags(&dom, "data-ledger-container", container);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let shared = attr(rows[0], "data-shared").unwrap();
        let own = attr(rows[0], "data-own").unwrap();
        assert!(shared.split(',').any(|n| n == "net"), "{}", rows[0]);
        for ns in ["mnt", "pid"] {
            assert!(own.split(',').any(|n| n == ns), "{}", rows[0]);
        }
    }
    assert_eq!(tags(&dom, "data-ebpf", "true").len(), 1, "probes are on");
    assert_eq!(
        tags(&dom, "data-dropped", "0").len(),
        1,
        "no event was lost"
    );

    // The screenshot kept with the test output.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e/trace-viewer.png");
    let _ = std::fs::remove_file(&shot);
    let out = browser(
        &cluster.data_dir.join("chromium-profile"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
        &viewer.url,
    );
    assert!(
        shot.exists(),
        "chromium wrote the screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("screenshot: {}", shot.display());

    // Kernel-checked status: a container whose own process is OOM killed.
    let hog = cluster.data_dir.join("hog.yml");
    std::fs::write(&hog, HOG).unwrap();
    cluster.kubectl_ok(&["apply", "-f", hog.to_str().unwrap()]);
    let status = cluster.wait_for("the kubelet's and the kernel's OOM kill", 90, || {
        let out = Command::new(bin())
            .arg("trace")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["--pod", "default/hog", "--status"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("hog "))?.to_owned();
        (line.contains("OOMKilled") && line.contains("OOM kill (dd") && line.contains("SIGKILL"))
            .then_some(line)
    });
    assert!(status.contains("exit code 137"), "{status}");

    let dom = dump_dom(&cluster, &viewer.url_of("default/hog"));
    let rows = tags(&dom, "data-status-container", "hog");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(attr(rows[0], "data-kubelet").unwrap().contains("OOMKilled"));
    let kernel = attr(rows[0], "data-kernel").unwrap();
    assert!(
        kernel.contains("OOM kill (dd") && kernel.contains("killed by SIGKILL"),
        "{kernel}"
    );
    assert!(!tags(&dom, "data-mark", "oom_kill").is_empty());

    // Once the pod is gone, the node agent says whether anything still runs.
    cluster.kubectl_ok(&["delete", "pod", "hog", "--grace-period=0"]);
    let node = cluster.node.clone();
    let after = cluster.wait_for("the leftover check of the removed pod", 60, || {
        let text = coxswain_trace(
            &cluster,
            &["--pod", "default/hog", "--node", &node, "--status"],
        );
        text.contains("pod removed").then_some(text)
    });
    assert!(after.contains("no process left running"), "{after}");
    cluster.kubectl_ok(&["delete", "pod", "viewer", "--grace-period=0"]);
}
