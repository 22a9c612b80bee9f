//! What the kubelet derives from a container's spec before creating it: the
//! spec hash that tells a changed container, the environment with the
//! downward API (`fieldRef`, `resourceFieldRef`) resolved, `$(VAR)`
//! references expanded, and the pod's hostname.
//!
//! Contract, as upstream: environment variables are resolved in spec order
//! and a `$(NAME)` in a value sees only the variables defined before it;
//! `command` and `args` see all of them; a reference to an undefined name
//! stays as written and `$$` is a literal `$`. The hash is stable across
//! kubelet restarts and builds: FNV-1a over the spec's JSON.

use std::sync::OnceLock;

use serde_json::Value;

use crate::api::quantity::Quantity;
use crate::api::{Container, Pod};

/// The longest hostname the kernel accepts.
const HOSTNAME_MAX: usize = 63;

/// What the downward API reads besides the pod itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Downward {
    /// The pod's IPs, the sandbox's (known before any container starts).
    pub pod_ips: Vec<String>,
    /// The node's address.
    pub host_ip: String,
    /// The node's allocatable CPU in millicores: `limits.cpu` when the
    /// container sets no limit.
    pub allocatable_cpu_milli: i64,
    /// The node's allocatable memory in bytes: `limits.memory` when unset.
    pub allocatable_memory: i64,
}

impl Downward {
    /// The node's allocatable resources read from the host, no IPs. The
    /// host is read once per process: a container start must not cost six
    /// file reads on the runtime's threads.
    pub fn for_host(host_ip: &str) -> Downward {
        static HOST: OnceLock<(i64, i64)> = OnceLock::new();
        let (cpu_milli, memory) = *HOST.get_or_init(|| {
            let host = super::node::HostInfo::read();
            (host.cpus as i64 * 1000, host.memory_kib as i64 * 1024)
        });
        Downward {
            pod_ips: Vec::new(),
            host_ip: host_ip.to_owned(),
            allocatable_cpu_milli: cpu_milli,
            allocatable_memory: memory,
        }
    }
}

/// A hash of the container's spec, as hex; a change to any field changes it.
pub fn container_hash(container: &Container) -> String {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The hostname of the pod's sandbox: `spec.hostname` or the pod's name,
/// cut to 63 characters without a trailing `-` or `.`.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let cut: String = name.chars().take(HOSTNAME_MAX).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

/// The container's environment as `NAME=value` pairs, in spec order, and
/// the `command` and `args` with the environment's `$(VAR)` expanded.
pub struct Resolved {
    pub env: Vec<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

/// Resolves the container's environment and expands its command and args.
pub fn resolve(pod: &Pod, container: &Container, downward: &Downward) -> Resolved {
    let mut defined: Vec<(String, String)> = Vec::new();
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &defined),
            (None, Some(source)) => from_source(pod, container, source, downward),
            (None, None) => String::new(),
        };
        match defined.iter_mut().find(|(name, _)| *name == var.name) {
            Some(entry) => entry.1 = value,
            None => defined.push((var.name.clone(), value)),
        }
    }
    let expand_all = |items: &[String]| items.iter().map(|i| expand(i, &defined)).collect();
    Resolved {
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        env: defined
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect(),
    }
}

/// Expands `$(NAME)` with the variables `defined`; `$$` is a `$`; anything
/// else stays as written.
pub fn expand(input: &str, defined: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
        {
            let name = &inner[..close];
            match defined.iter().rev().find(|(n, _)| n == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `valueFrom`; empty for sources the kubelet cannot read
/// (ConfigMaps and Secrets need the API) or that name nothing.
fn from_source(pod: &Pod, container: &Container, source: &Value, downward: &Downward) -> String {
    if let Some(path) = source
        .pointer("/fieldRef/fieldPath")
        .and_then(Value::as_str)
    {
        return field(pod, path, downward).unwrap_or_default();
    }
    if let Some(reference) = source.get("resourceFieldRef") {
        return resource_field(pod, container, reference, downward).unwrap_or_default();
    }
    tracing::debug!(uid = pod.metadata.uid(), container = %container.name,
        "environment source not supported, left empty");
    String::new()
}

/// A `fieldRef` path's value.
fn field(pod: &Pod, path: &str, downward: &Downward) -> Option<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    if let Some(key) = keyed("metadata.labels") {
        return meta.labels.get(&key).cloned();
    }
    if let Some(key) = keyed("metadata.annotations") {
        return meta.annotations.get(&key).cloned();
    }
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.node_name,
        "spec.serviceAccountName" => spec.service_account_name.or(spec.service_account),
        "status.podIP" => downward.pod_ips.first().cloned(),
        "status.podIPs" => Some(downward.pod_ips.join(",")),
        "status.hostIP" | "status.hostIPs" => Some(downward.host_ip.clone()),
        _ => None,
    }
}

/// A `resourceFieldRef`'s value: the resource of the named (or this)
/// container divided by the divisor, rounded up; limits not set are the
/// node's allocatable, requests not set are the limit when set, else 0.
fn resource_field(
    pod: &Pod,
    container: &Container,
    reference: &Value,
    downward: &Downward,
) -> Option<String> {
    let resource = reference.get("resource")?.as_str()?;
    let target = match reference.get("containerName").and_then(Value::as_str) {
        Some(name) if !name.is_empty() && name != container.name => {
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .chain(&spec.init_containers)
                .find(|c| c.name == name)?
        }
        _ => container,
    };
    let resources = target.resources.clone().unwrap_or_default();
    let divisor = reference.get("divisor").and_then(|d| match d {
        Value::String(text) => Some(Quantity::from(text.as_str())),
        Value::Number(n) => Some(Quantity::from(n.to_string().as_str())),
        _ => None,
    });
    let (kind, name) = resource.split_once('.')?;
    let limit = resources.limits.get(name);
    let set = match kind {
        "limits" => limit,
        "requests" => resources.requests.get(name).or(limit),
        _ => return None,
    };
    let cpu = name == "cpu";
    let amount = match (set, kind, cpu) {
        (Some(q), _, true) => q.to_milli().ok()?,
        (Some(q), _, false) => q.to_bytes().ok()?,
        (None, "limits", true) => downward.allocatable_cpu_milli,
        (None, "limits", false) if name == "memory" => downward.allocatable_memory,
        (None, _, _) => 0,
    };
    let divisor = match (divisor, cpu) {
        (Some(d), true) => d.to_milli().ok()?,
        (Some(d), false) => d.to_bytes().ok()?,
        (None, true) => 1000,
        (None, false) => 1,
    };
    if divisor <= 0 {
        return None;
    }
    Some(((amount + divisor - 1) / divisor).to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::api::{EnvVar, PodSpec, ResourceRequirements};

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, source: Value) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn downward() -> Downward {
        Downward {
            pod_ips: vec!["172.17.0.5".into()],
            host_ip: "10.0.0.1".into(),
            allocatable_cpu_milli: 4000,
            allocatable_memory: 8 << 30,
        }
    }

    #[test]
    fn references_expand_from_earlier_variables_only() {
        let defined = vec![("A".to_owned(), "x".to_owned())];
        assert_eq!(expand("$(A)-$(B)", &defined), "x-$(B)");
        assert_eq!(expand("$$(A) $ $x $(", &defined), "$(A) $ $x $(");
        assert_eq!(expand("cost: $5", &defined), "cost: $5");
    }

    #[test]
    fn field_refs_read_the_pod_and_its_addresses() {
        let mut pod = Pod::new("team", "web-1");
        pod.metadata.uid = Some("u1".into());
        pod.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        pod.metadata.annotations = BTreeMap::from([("note".to_owned(), "hi".to_owned())]);
        let container = Container {
            name: "c".into(),
            env: vec![
                from("NAME", json!({"fieldRef": {"fieldPath": "metadata.name"}})),
                from(
                    "NS",
                    json!({"fieldRef": {"fieldPath": "metadata.namespace"}}),
                ),
                from("UID", json!({"fieldRef": {"fieldPath": "metadata.uid"}})),
                from(
                    "APP",
                    json!({"fieldRef": {"fieldPath": "metadata.labels['app']"}}),
                ),
                from(
                    "NOTE",
                    json!({"fieldRef": {"fieldPath": "metadata.annotations['note']"}}),
                ),
                from("NODE", json!({"fieldRef": {"fieldPath": "spec.nodeName"}})),
                from(
                    "SA",
                    json!({"fieldRef": {"fieldPath": "spec.serviceAccountName"}}),
                ),
                from("IP", json!({"fieldRef": {"fieldPath": "status.podIP"}})),
                from("IPS", json!({"fieldRef": {"fieldPath": "status.podIPs"}})),
                from("HOST", json!({"fieldRef": {"fieldPath": "status.hostIP"}})),
                var("URL", "http://$(IP):80/$(NAME)"),
            ],
            command: vec!["echo".into(), "$(NS)".into()],
            args: vec!["$(UNSET)".into(), "$$(APP)".into()],
            ..Default::default()
        };
        pod.spec = Some(PodSpec {
            node_name: Some("n1".into()),
            service_account_name: Some("default".into()),
            containers: vec![container.clone()],
            ..Default::default()
        });
        let resolved = resolve(&pod, &container, &downward());
        assert_eq!(
            resolved.env,
            [
                "NAME=web-1",
                "NS=team",
                "UID=u1",
                "APP=web",
                "NOTE=hi",
                "NODE=n1",
                "SA=default",
                "IP=172.17.0.5",
                "IPS=172.17.0.5",
                "HOST=10.0.0.1",
                "URL=http://172.17.0.5:80/web-1",
            ]
        );
        assert_eq!(resolved.command, ["echo", "team"]);
        assert_eq!(resolved.args, ["$(UNSET)", "$(APP)"]);
    }

    #[test]
    fn resource_field_refs_divide_and_round_up() {
        let mut pod = Pod::new("default", "web");
        let container = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: BTreeMap::from([
                    ("cpu".to_owned(), "1500m".into()),
                    ("memory".to_owned(), "64Mi".into()),
                ]),
                ..Default::default()
            }),
            env: vec![
                from(
                    "CPU",
                    json!({"resourceFieldRef": {"resource": "limits.cpu"}}),
                ),
                from(
                    "MEM",
                    json!({"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}),
                ),
                from(
                    "REQ",
                    json!({"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}),
                ),
            ],
            ..Default::default()
        };
        let unlimited = Container {
            name: "u".into(),
            env: vec![
                from(
                    "CPU",
                    json!({"resourceFieldRef": {"resource": "limits.cpu"}}),
                ),
                from(
                    "REQ",
                    json!({"resourceFieldRef": {"resource": "requests.memory"}}),
                ),
            ],
            ..Default::default()
        };
        pod.spec = Some(PodSpec {
            containers: vec![container.clone(), unlimited.clone()],
            ..Default::default()
        });
        let resolved = resolve(&pod, &container, &downward());
        assert_eq!(resolved.env, ["CPU=2", "MEM=64", "REQ=1500"]);
        let resolved = resolve(&pod, &unlimited, &downward());
        assert_eq!(resolved.env, ["CPU=4", "REQ=0"]);
    }

    #[test]
    fn long_pod_names_make_hostnames_of_at_most_63_characters() {
        let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let pod = Pod::new("default", &name);
        assert_eq!(hostname(&pod), "a".repeat(62));
        assert_eq!(hostname(&Pod::new("default", "web")), "web");
    }

    #[test]
    fn the_spec_hash_changes_with_the_image_only_when_the_spec_does() {
        let a = Container {
            name: "c".into(),
            image: Some("coxswain/web:0.1".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(container_hash(&a), container_hash(&b));
        b.image = Some("coxswain/busybox:0.1".into());
        assert_ne!(container_hash(&a), container_hash(&b));
    }
}
