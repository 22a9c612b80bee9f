//! Static pods: pod manifests (YAML or JSON) in a directory on the node.
//!
//! [`ManifestDir::scan`] reads the directory and returns the pods it
//! describes, each named `<name>-<node>`, in namespace `default` unless the
//! manifest names one, bound to this node, with a uid that hashes the file's
//! content and the node name: the same file gives the same uid across
//! kubelet restarts, and any edit gives a new pod. A file that does not
//! parse is logged once per change (with its path, line and column) and
//! skipped; hidden files and directories are ignored.
//!
//! YAML parsing stays in this module (serde_yaml 0.9 is unmaintained), so a
//! successor can replace it here alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::api::{Pod, Resource, Time};

/// Annotation: where the pod came from (`file` for a manifest).
pub const ANNOTATION_CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation: the static pod's hash, which is also its uid.
pub const ANNOTATION_CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation: when the kubelet first saw this version of the manifest.
pub const ANNOTATION_CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// Annotation on a mirror pod: the hash of the static pod it mirrors.
pub const ANNOTATION_CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// A manifest that cannot become a pod.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    pub path: PathBuf,
    /// 1-based line and column of a syntax or type error, when known.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Parses one manifest into the static pod it describes on `node`.
pub fn parse_manifest(path: &Path, content: &[u8], node: &str) -> Result<Pod, ManifestError> {
    let error = |location, message: String| ManifestError {
        path: path.to_owned(),
        location,
        message,
    };
    let mut pod: Pod = serde_yaml::from_slice(content).map_err(|e| {
        let location = e.location().map(|l| (l.line(), l.column()));
        error(location, e.to_string())
    })?;

    if !pod.kind.is_empty() && pod.kind != "Pod" {
        return Err(error(
            None,
            format!("kind is {:?}, expected \"Pod\"", pod.kind),
        ));
    }
    let name = pod.metadata.name().to_owned();
    if name.is_empty() {
        return Err(error(None, "metadata.name is required".into()));
    }
    let spec = pod.spec.get_or_insert_default();
    if spec.containers.is_empty() {
        return Err(error(None, "spec.containers must not be empty".into()));
    }
    let mut names = HashSet::new();
    for container in &spec.containers {
        if container.name.is_empty() {
            return Err(error(None, "every container needs a name".into()));
        }
        if container.image.as_deref().unwrap_or("").is_empty() {
            return Err(error(
                None,
                format!("container {:?} needs an image", container.name),
            ));
        }
        if !names.insert(container.name.as_str()) {
            return Err(error(
                None,
                format!("container name {:?} is used twice", container.name),
            ));
        }
    }

    let uid = content_hash(content, node);
    spec.node_name = Some(node.to_owned());
    pod.api_version = "v1".into();
    pod.kind = "Pod".into();
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{name}-{node}"));
    if meta.namespace().is_empty() {
        meta.namespace = Some("default".into());
    }
    meta.uid = Some(uid.clone());
    meta.annotations
        .insert(ANNOTATION_CONFIG_SOURCE.into(), "file".into());
    meta.annotations.insert(ANNOTATION_CONFIG_HASH.into(), uid);
    Ok(pod)
}

/// A stable 128-bit hash of a manifest and the node, as 32 hex digits
/// (FNV-1a, twice with different offsets; not cryptographic, only stable).
pub fn content_hash(content: &[u8], node: &str) -> String {
    fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut hash = seed;
        for part in parts {
            for &byte in *part {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
    let parts: [&[u8]; 2] = [content, node.as_bytes()];
    let high = fnv1a(0xcbf2_9ce4_8422_2325, &parts);
    let low = fnv1a(0x6c62_272e_07bb_0142, &parts);
    format!("{high:016x}{low:016x}")
}

/// What was last read from one file.
struct FileState {
    content: Vec<u8>,
    parsed: Result<Pod, ManifestError>,
}

/// The manifest directory of one node, scanned again and again.
pub struct ManifestDir {
    dir: PathBuf,
    node: String,
    /// Per file: its last content and what it parsed to.
    files: BTreeMap<PathBuf, FileState>,
    /// Whether the last attempt to read the directory failed (logged once).
    unreadable: bool,
}

impl ManifestDir {
    pub fn new(dir: PathBuf, node: &str) -> ManifestDir {
        ManifestDir {
            dir,
            node: node.to_owned(),
            files: BTreeMap::new(),
            unreadable: false,
        }
    }

    /// Reads the directory again and returns its static pods by uid. A pod
    /// keeps the `config.seen` time of the scan that first saw its content.
    pub fn scan(&mut self) -> HashMap<String, Pod> {
        let mut present = HashSet::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                if self.unreadable {
                    tracing::info!(dir = %self.dir.display(), "manifest directory readable again");
                    self.unreadable = false;
                }
                for entry in entries.flatten() {
                    let path = entry.path();
                    let hidden = entry.file_name().to_string_lossy().starts_with('.');
                    if hidden || !path.is_file() {
                        continue;
                    }
                    let Ok(content) = std::fs::read(&path) else {
                        continue;
                    };
                    present.insert(path.clone());
                    self.update(path, content);
                }
            }
            Err(error) => {
                if !self.unreadable {
                    tracing::warn!(dir = %self.dir.display(), %error,
                        "cannot read the manifest directory");
                    self.unreadable = true;
                }
            }
        }
        self.files.retain(|path, _| present.contains(path));

        // Two files may name the same pod: the first by path wins.
        let mut pods = HashMap::new();
        let mut names = HashSet::new();
        for (path, state) in &self.files {
            let Ok(pod) = &state.parsed else { continue };
            let key = (pod.namespace().to_owned(), pod.name().to_owned());
            if !names.insert(key) {
                tracing::debug!(path = %path.display(), name = pod.name(),
                    "static pod name already used by another manifest, skipping");
                continue;
            }
            pods.insert(pod.metadata.uid().to_owned(), pod.clone());
        }
        pods
    }

    fn update(&mut self, path: PathBuf, content: Vec<u8>) {
        if self
            .files
            .get(&path)
            .is_some_and(|state| state.content == content)
        {
            return;
        }
        let parsed = parse_manifest(&path, &content, &self.node).map(|mut pod| {
            let seen = chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.9fZ")
                .to_string();
            pod.metadata
                .annotations
                .insert(ANNOTATION_CONFIG_SEEN.into(), seen);
            pod
        });
        match &parsed {
            Ok(pod) => tracing::info!(path = %path.display(), namespace = pod.namespace(),
                name = pod.name(), uid = pod.metadata.uid(), "static pod manifest read"),
            Err(error) => tracing::warn!(path = %path.display(), %error,
                "skipping a static pod manifest that cannot be read"),
        }
        self.files.insert(path, FileState { content, parsed });
    }
}

/// Whether an API pod is a mirror pod (the API's copy of a static pod).
pub fn is_mirror_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .contains_key(ANNOTATION_CONFIG_MIRROR)
}

/// Whether a pod came from the manifest directory.
pub fn is_static_pod(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .get(ANNOTATION_CONFIG_SOURCE)
        .is_some_and(|s| s == "file")
}

/// The mirror pod of a static pod: same name, namespace, labels and spec,
/// owned by the node. `node_uid` is the Node object's uid.
pub fn mirror_pod(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = Pod::new(static_pod.namespace(), static_pod.name());
    mirror.metadata.labels = static_pod.metadata.labels.clone();
    mirror.metadata.annotations = static_pod.metadata.annotations.clone();
    mirror.metadata.annotations.insert(
        ANNOTATION_CONFIG_MIRROR.into(),
        static_pod.metadata.uid().to_owned(),
    );
    mirror.metadata.owner_references = vec![crate::api::OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_owned(),
        uid: node_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    mirror.spec = static_pod.spec.clone();
    mirror
}

/// The time a static pod was first seen, for its `startTime`.
pub fn seen_time(pod: &Pod) -> Option<Time> {
    let seen = pod.metadata.annotations.get(ANNOTATION_CONFIG_SEEN)?;
    let parsed = chrono::DateTime::parse_from_rfc3339(seen).ok()?;
    Some(Time(parsed.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: coxswain/web:0.1
    ports:
    - containerPort: 80
  hostName: k8s-master
";

    #[test]
    fn a_static_pod_is_named_after_its_node_and_bound_to_it() {
        let pod = parse_manifest(Path::new("/m/nginx.yaml"), NGINX.as_bytes(), "node-a").unwrap();
        assert_eq!(pod.name(), "nginx-node-a");
        assert_eq!(pod.namespace(), "default");
        assert_eq!(pod.node_name(), "node-a");
        let uid = pod.metadata.uid().to_owned();
        assert_eq!(uid.len(), 32);
        assert!(uid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(pod.metadata.annotations[ANNOTATION_CONFIG_SOURCE], "file");
        assert_eq!(pod.metadata.annotations[ANNOTATION_CONFIG_HASH], uid);
        assert!(is_static_pod(&pod));
    }

    #[test]
    fn the_uid_is_stable_for_the_same_content_and_changes_with_it() {
        let path = Path::new("/m/nginx.yaml");
        let a = parse_manifest(path, NGINX.as_bytes(), "node-a").unwrap();
        let again = parse_manifest(path, NGINX.as_bytes(), "node-a").unwrap();
        let other_node = parse_manifest(path, NGINX.as_bytes(), "node-b").unwrap();
        let edited = NGINX.replace("0.1", "0.2");
        let edited = parse_manifest(path, edited.as_bytes(), "node-a").unwrap();
        assert_eq!(a.metadata.uid, again.metadata.uid);
        assert_ne!(a.metadata.uid, other_node.metadata.uid);
        assert_ne!(a.metadata.uid, edited.metadata.uid);
    }

    #[test]
    fn json_manifests_are_read_too() {
        let json = r#"{"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"db","namespace":"kube-system"},
            "spec":{"containers":[{"name":"db","image":"coxswain/busybox:0.1"}]}}"#;
        let pod = parse_manifest(Path::new("/m/db.json"), json.as_bytes(), "n").unwrap();
        assert_eq!(pod.namespace(), "kube-system");
        assert_eq!(pod.name(), "db-n");
    }

    #[test]
    fn a_bad_manifest_reports_its_path_line_and_column() {
        let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  \
                   - name: [\n";
        let error = parse_manifest(Path::new("/m/bad.yaml"), bad.as_bytes(), "n").unwrap_err();
        let (line, _column) = error.location.expect("a location");
        assert_eq!(line, 7);
        let text = error.to_string();
        assert!(text.starts_with("/m/bad.yaml:7:"), "{text}");
    }

    #[test]
    fn a_manifest_of_the_wrong_type_reports_where() {
        let bad = "kind: Pod\nmetadata:\n  name: web\nspec:\n  containers: 3\n";
        let error = parse_manifest(Path::new("/m/t.yaml"), bad.as_bytes(), "n").unwrap_err();
        assert_eq!(error.location.map(|l| l.0), Some(5));
    }

    #[test]
    fn manifests_without_containers_or_names_are_refused() {
        let no_name = "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: b\n";
        assert!(parse_manifest(Path::new("a"), no_name.as_bytes(), "n").is_err());
        let no_containers = "kind: Pod\nmetadata:\n  name: a\nspec: {}\n";
        assert!(parse_manifest(Path::new("a"), no_containers.as_bytes(), "n").is_err());
        let deployment = "kind: Deployment\nmetadata:\n  name: a\n";
        assert!(parse_manifest(Path::new("a"), deployment.as_bytes(), "n").is_err());
    }

    #[test]
    fn scanning_skips_bad_and_hidden_files_and_forgets_removed_ones() {
        let dir = std::env::temp_dir().join(format!("coxswain-manifests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nginx.yaml"), NGINX).unwrap();
        std::fs::write(dir.join("bad.yaml"), "kind: Pod\nmetadata: [\n").unwrap();
        std::fs::write(dir.join(".hidden.yaml"), NGINX.replace("nginx", "other")).unwrap();

        let mut manifests = ManifestDir::new(dir.clone(), "n1");
        let pods = manifests.scan();
        assert_eq!(pods.len(), 1);
        let pod = pods.values().next().unwrap();
        assert_eq!(pod.name(), "nginx-n1");
        let seen = pod.metadata.annotations[ANNOTATION_CONFIG_SEEN].clone();

        // The same content keeps its first-seen time.
        let again = manifests.scan();
        assert_eq!(
            again.values().next().unwrap().metadata.annotations[ANNOTATION_CONFIG_SEEN],
            seen
        );

        std::fs::remove_file(dir.join("nginx.yaml")).unwrap();
        assert!(manifests.scan().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mirror_pod_copies_the_static_pod_and_is_owned_by_the_node() {
        let pod = parse_manifest(Path::new("/m/nginx.yaml"), NGINX.as_bytes(), "n1").unwrap();
        let mirror = mirror_pod(&pod, "n1", "node-uid");
        assert_eq!(mirror.name(), "nginx-n1");
        assert_eq!(mirror.metadata.uid, None);
        assert_eq!(
            mirror.metadata.annotations[ANNOTATION_CONFIG_MIRROR],
            pod.metadata.uid()
        );
        assert_eq!(mirror.spec, pod.spec);
        let owner = &mirror.metadata.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Node", "node-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(is_mirror_pod(&mirror));
    }
}
