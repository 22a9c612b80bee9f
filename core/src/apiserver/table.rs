//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks
//! for, with the columns and cell rules of the upstream printers.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::registry::KindInfo;

/// Does this Accept header ask for a Table?
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn column(name: &str, kind: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description,
           "priority": priority})
}

/// The column definitions of a kind.
pub fn columns(info: &KindInfo) -> Vec<Value> {
    let name = column(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age = column(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp of when the object was created.",
    );
    match info.kind {
        "Pod" => vec![
            name,
            column(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            column("IP", "string", "", 1, "IP address allocated to the pod."),
            column(
                "Node",
                "string",
                "",
                1,
                "Name of the node this pod is assigned to.",
            ),
            column(
                "Nominated Node",
                "string",
                "",
                1,
                "Name of the node where the pod is nominated to run.",
            ),
            column(
                "Readiness Gates",
                "string",
                "",
                1,
                "The readiness gates of this pod.",
            ),
        ],
        "Node" => vec![
            name,
            column("Status", "string", "", 0, "The status of the node"),
            column("Roles", "string", "", 0, "The roles of the node"),
            age,
            column(
                "Version",
                "string",
                "",
                0,
                "Kubelet Version reported by the node.",
            ),
            column("Internal-IP", "string", "", 1, "List of internal IPs."),
            column("External-IP", "string", "", 1, "List of external IPs."),
            column(
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node.",
            ),
            column(
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node.",
            ),
            column(
                "Container-Runtime",
                "string",
                "",
                1,
                "Container Runtime Version reported by the node.",
            ),
        ],
        "Deployment" => vec![
            name,
            column(
                "Ready",
                "string",
                "",
                0,
                "Number of the pod with ready state",
            ),
            column(
                "Up-to-date",
                "integer",
                "",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "integer",
                "",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            column(
                "Containers",
                "string",
                "",
                1,
                "Names of each container in the template.",
            ),
            column(
                "Images",
                "string",
                "",
                1,
                "Images referenced by each container in the template.",
            ),
            column("Selector", "string", "", 1, "Label selector for pods."),
        ],
        "ReplicaSet" => vec![
            name,
            column("Desired", "integer", "", 0, "Number of desired pods."),
            column("Current", "integer", "", 0, "Number of actual replicas."),
            column(
                "Ready",
                "integer",
                "",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age,
            column(
                "Containers",
                "string",
                "",
                1,
                "Names of each container in the template.",
            ),
            column(
                "Images",
                "string",
                "",
                1,
                "Images referenced by each container in the template.",
            ),
            column("Selector", "string", "", 1, "Label selector for pods."),
        ],
        "Event" => vec![
            column(
                "Last Seen",
                "string",
                "",
                0,
                "Time when last event from the same source occurred.",
            ),
            column(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning).",
            ),
            column(
                "Reason",
                "string",
                "",
                0,
                "Reason is why the action was taken.",
            ),
            column(
                "Object",
                "string",
                "",
                0,
                "The object that this event is about.",
            ),
            column(
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            column(
                "Subobject",
                "string",
                "",
                1,
                "The field of the object that this event is about.",
            ),
            column(
                "Source",
                "string",
                "",
                1,
                "The component reporting this event.",
            ),
            column(
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded.",
            ),
            column(
                "Count",
                "string",
                "",
                1,
                "The number of times this event has occurred.",
            ),
            column("Name", "string", "name", 1, "Name of the event."),
        ],
        "Namespace" => vec![
            name,
            column("Status", "string", "", 0, "The status of the namespace"),
            age,
        ],
        "Lease" => vec![
            name,
            column(
                "Holder",
                "string",
                "",
                0,
                "The identity of the holder of the lease.",
            ),
            age,
        ],
        _ => vec![name, age],
    }
}

/// HumanDuration, as kubectl prints ages.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let d = hours / 24;
        return if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let years = hours / 24 / 365;
    let days = (hours / 24) % 365;
    if hours < 24 * 365 * 8 && days != 0 {
        return format!("{years}y{days}d");
    }
    format!("{years}y")
}

fn age(timestamp: &Value, now: DateTime<Utc>) -> String {
    match timestamp
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

/// The cells of one row.
pub fn cells(info: &KindInfo, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let meta = &object["metadata"];
    let name = json!(text(&meta["name"]));
    let created = age(&meta["creationTimestamp"], now);
    match info.kind {
        "Pod" => pod_cells(object, now),
        "Node" => node_cells(object, now),
        "Deployment" => {
            let (spec, status) = (&object["spec"], &object["status"]);
            let (containers, images) = template_containers(&spec["template"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    status["readyReplicas"].as_i64().unwrap_or(0),
                    spec["replicas"].as_i64().unwrap_or(0)
                )),
                json!(status["updatedReplicas"].as_i64().unwrap_or(0)),
                json!(status["availableReplicas"].as_i64().unwrap_or(0)),
                json!(created),
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        }
        "ReplicaSet" => {
            let (spec, status) = (&object["spec"], &object["status"]);
            let (containers, images) = template_containers(&spec["template"]);
            vec![
                name,
                json!(spec["replicas"].as_i64().unwrap_or(0)),
                json!(status["replicas"].as_i64().unwrap_or(0)),
                json!(status["readyReplicas"].as_i64().unwrap_or(0)),
                json!(created),
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        }
        "Event" => {
            let involved = &object["involvedObject"];
            let last = if object["lastTimestamp"].is_string() {
                age(&object["lastTimestamp"], now)
            } else if object["eventTime"].is_string() {
                age(&object["eventTime"], now)
            } else {
                created.clone()
            };
            let first = if object["firstTimestamp"].is_string() {
                age(&object["firstTimestamp"], now)
            } else {
                created.clone()
            };
            let source = object["source"]["component"]
                .as_str()
                .or(object["reportingComponent"].as_str())
                .unwrap_or("");
            let source = match object["source"]["host"].as_str() {
                Some(host) if !host.is_empty() => format!("{source}, {host}"),
                _ => source.to_owned(),
            };
            vec![
                json!(last),
                json!(text(&object["type"])),
                json!(text(&object["reason"])),
                json!(format!(
                    "{}/{}",
                    text(&involved["kind"]).to_lowercase(),
                    text(&involved["name"])
                )),
                json!(text(&object["message"]).trim()),
                json!(text(&involved["fieldPath"])),
                json!(source),
                json!(first),
                json!(object["count"].as_i64().unwrap_or(1).to_string()),
                name,
            ]
        }
        "Namespace" => vec![
            name,
            json!(text(&object["status"]["phase"])),
            json!(created),
        ],
        "Lease" => vec![
            name,
            json!(text(&object["spec"]["holderIdentity"])),
            json!(created),
        ],
        _ => vec![name, json!(created)],
    }
}

fn template_containers(template: &Value) -> (String, String) {
    let containers = template["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| text(&c["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector_text(selector: &Value) -> String {
    let parsed: crate::api::LabelSelector =
        serde_json::from_value(selector.clone()).unwrap_or_default();
    let mut parts: Vec<String> = parsed
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in &parsed.match_expressions {
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, e.values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (meta, spec, status) = (&pod["metadata"], &pod["spec"], &pod["status"]);
    let total = spec["containers"].as_array().map_or(0, Vec::len);
    let statuses = status["containerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    // While the pod initializes, the restarts shown are the init
    // containers' up to the one it waits for; then the app containers'.
    let initializing = initializing(spec, status);
    let counted = match &initializing {
        Some((_, visited)) => *visited,
        None => statuses,
    };
    let mut restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    for s in counted {
        restarts += s["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = s["lastState"]["terminated"]["finishedAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            let t = t.with_timezone(&Utc);
            if last_restart.is_none_or(|l| t > l) {
                last_restart = Some(t);
            }
        }
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration((now - t).num_seconds())
            )
        }
        _ => restarts.to_string(),
    };
    let mut reason = text(&status["phase"]).to_owned();
    if reason.is_empty() {
        reason = "Pending".into();
    }
    if let Some(r) = status["reason"].as_str().filter(|r| !r.is_empty()) {
        reason = r.to_owned();
    }
    if let Some((init_reason, _)) = initializing {
        reason = init_reason;
    } else {
        let mut has_running = false;
        for s in statuses.iter().rev() {
            let state = &s["state"];
            if let Some(r) = state["waiting"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                reason = r.to_owned();
            } else if state["terminated"].is_object() {
                reason = terminated_reason(&state["terminated"]);
            } else if state["running"].is_object() && s["ready"].as_bool() == Some(true) {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if meta["deletionTimestamp"].is_string() {
        reason = if status["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let gates = spec["readinessGates"].as_array().map_or(0, Vec::len);
    vec![
        json!(text(&meta["name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(&meta["creationTimestamp"], now)),
        json!(or_none(text(&status["podIP"]))),
        json!(or_none(text(&spec["nodeName"]))),
        json!(or_none(text(&status["nominatedNodeName"]))),
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

/// Where a pod's init containers stand, as upstream's `printPod` reads
/// them: `None` once they all completed (or the pod is `Initialized`), else
/// the STATUS to show (`Init:<reason>` for the first that failed or waits
/// with a reason, `Init:<done>/<total>` otherwise) and the init container
/// statuses up to that one, whose restarts are shown.
fn initializing<'a>(spec: &Value, status: &'a Value) -> Option<(String, &'a [Value])> {
    let total = spec["initContainers"].as_array().map_or(0, Vec::len);
    let statuses = status["initContainerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut found = None;
    for (i, s) in statuses.iter().enumerate() {
        let state = &s["state"];
        let terminated = &state["terminated"];
        let waiting = state["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing");
        let shown = if terminated.is_object() {
            if terminated["exitCode"].as_i64().unwrap_or(0) == 0 {
                continue;
            }
            format!("Init:{}", terminated_reason(terminated))
        } else if let Some(reason) = waiting {
            format!("Init:{reason}")
        } else {
            format!("Init:{i}/{total}")
        };
        found = Some((shown, &statuses[..=i]));
        break;
    }
    let initialized = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    found.filter(|_| !initialized)
}

/// A terminated container's reason, else its signal, else its exit code.
fn terminated_reason(terminated: &Value) -> String {
    match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
        Some(r) => r.to_owned(),
        None => match terminated["signal"].as_i64().filter(|s| *s != 0) {
            Some(signal) => format!("Signal:{signal}"),
            None => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
        },
    }
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (meta, spec, status) = (&node["metadata"], &node["spec"], &node["status"]);
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| match text(&c["status"]) {
            "True" => "Ready",
            "False" => "NotReady",
            _ => "Unknown",
        })
        .unwrap_or("Unknown");
    let mut state = ready.to_owned();
    if spec["unschedulable"].as_bool() == Some(true) {
        state.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = meta["labels"].as_object() {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_owned());
                }
            } else if key == "kubernetes.io/role" {
                roles.push(text(value).to_owned());
            }
        }
    }
    roles.sort();
    let address = |kind: &str| -> String {
        let found: Vec<&str> = status["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == kind)
            .map(|a| text(&a["address"]))
            .collect();
        or_none(&found.join(","))
    };
    let info = &status["nodeInfo"];
    vec![
        json!(text(&meta["name"])),
        json!(state),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age(&meta["creationTimestamp"], now)),
        json!(text(&info["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_none(text(&info["osImage"]))),
        json!(or_none(text(&info["kernelVersion"]))),
        json!(or_none(text(&info["containerRuntimeVersion"]))),
    ]
}

/// One Table row, with the object's metadata as PartialObjectMetadata, or
/// the whole object when the client asked `includeObject=Object` (kubectl
/// does for `--sort-by` on fields outside metadata).
pub fn row(info: &KindInfo, object: &Value, now: DateTime<Utc>, full_object: bool) -> Value {
    let embedded = if full_object {
        object.clone()
    } else {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"],
        })
    };
    json!({"cells": cells(info, object, now), "object": embedded})
}

/// A Table of objects. Watch events after the first omit the columns.
pub fn table<'a>(
    info: &KindInfo,
    objects: impl IntoIterator<Item = &'a Value>,
    resource_version: &str,
    with_columns: bool,
    full_objects: bool,
) -> Value {
    let now = Utc::now();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| row(info, o, now, full_objects))
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "rows": rows,
    });
    if with_columns {
        table["columnDefinitions"] = Value::Array(columns(info));
    } else {
        table["columnDefinitions"] = Value::Null;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(186), "3m6s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }

    #[test]
    fn a_pod_with_a_waiting_container_shows_the_waiting_reason() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        });
        let cells = pod_cells(&pod, Utc::now());
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "ImagePullBackOff");
        assert_eq!(cells[5], "<none>");
        assert_eq!(cells[6], "n1");
    }

    fn initializing_pod(init: Value, initialized: bool) -> Value {
        let condition = if initialized { "True" } else { "False" };
        json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}],
                     "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": init,
                "conditions": [{"type": "Initialized", "status": condition}],
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}
        })
    }

    #[test]
    fn a_pod_with_init_containers_shows_their_progress() {
        let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let status = |a: Value, b: Value, restarts: i64| {
            let init = json!([
                {"name": "a", "restartCount": restarts, "state": a,
                 "lastState": {"terminated": {"exitCode": 1,
                                              "finishedAt": "2026-01-01T00:00:00Z"}}},
                {"name": "b", "restartCount": 0, "state": b},
            ]);
            let cells = pod_cells(&initializing_pod(init, false), Utc::now());
            (cells[2].as_str().unwrap().to_owned(), cells[3].clone())
        };

        let pending = || waiting("PodInitializing");
        let shown = |a: Value| status(a, pending(), 0).0;
        assert_eq!(shown(json!({"running": {}})), "Init:0/2");
        let (second, restarts) = status(done.clone(), json!({"running": {}}), 0);
        assert_eq!((second.as_str(), restarts), ("Init:1/2", json!("0")));
        let failed = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(shown(failed), "Init:Error");
        let killed = json!({"terminated": {"exitCode": 137, "signal": 9}});
        assert_eq!(shown(killed), "Init:Signal:9");
        let exited = json!({"terminated": {"exitCode": 2}});
        assert_eq!(shown(exited), "Init:ExitCode:2");
        let (looping, restarts) = status(waiting("CrashLoopBackOff"), pending(), 3);
        assert_eq!(looping, "Init:CrashLoopBackOff");
        assert!(restarts.as_str().unwrap().starts_with("3 ("), "{restarts}");

        // Once initialized, the app containers speak.
        let init = json!([{"name": "a", "restartCount": 0, "state": done},
                          {"name": "b", "restartCount": 0, "state": done}]);
        let cells = pod_cells(&initializing_pod(init, true), Utc::now());
        assert_eq!(cells[2], "PodInitializing");
    }

    #[test]
    fn a_deleting_pod_is_terminating() {
        let pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                         "spec": {"containers": []}, "status": {"phase": "Running"}});
        assert_eq!(pod_cells(&pod, Utc::now())[2], "Terminating");
    }
}
