//! The Kubernetes manifests (`deploy/k8s/`), checked offline: every
//! overlay is rendered with `kubectl kustomize`, and what it renders must
//! agree with itself and with the real command line:
//!
//! - every emulator id has a Service named after it, on port 5001, that
//!   selects exactly one Deployment, and that Deployment runs that id;
//! - ports agree: the Service's targetPort is the port the emulator binds
//!   and a port the container declares; probes are `GET /state` on an
//!   emulator's port;
//! - every emulator pod shares the base's settings (non-root, read-only
//!   root file system, a memory-backed /dev/shm with a size limit,
//!   resources with requests no larger than limits);
//! - the injector names every emulator at its Service's address;
//! - a `run` container's arguments are run by the real binary with
//!   `--dry-run` (the image's /opt/bitstream/packages/<name> mapped to the
//!   real package assembled from this build), which must load the package
//!   and print the manifest's id and bind address.
//!
//! Every rendered object also passes the Kubernetes API's JSON schemas
//! (strict: no unknown field), with `kubernetes-validate` (PyPI).
//!
//! `kubectl` must be on PATH (or named by `KUBECTL`), and so must
//! `kubernetes-validate` (or `KUBERNETES_VALIDATE`). Without them the tests
//! that need them say so and pass, except under CI (`CI` set, as `.ci/run`
//! runs), where they fail: `.ci/run` installs both when they are missing.
//! No cluster is involved: nothing here is applied anywhere.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;
use support::{plugin_package, workspace_dir, BINARY};
use tempfile::TempDir;

/// Every overlay under deploy/k8s: each must render and pass the checks.
const OVERLAYS: &[&str] = &[
    "per-emulator",
    "per-emulator-download",
    "fleet",
    "fleet-200",
];

/// Folders of deploy/k8s that are parts of overlays, not overlays.
const PARTS: &[&str] = &["base", "injector", "components"];

/// Where the image keeps its packages (the Dockerfile copies them there).
const IMAGE_PACKAGES: &str = "/opt/bitstream/packages/";

/// The port every emulator's Service answers on, as in the original.
const EMULATOR_PORT: u64 = 5001;

/// The injector's Service and port.
const INJECTOR_SERVICE: &str = "bitstream-injector";
const INJECTOR_PORT: u64 = 5002;

fn k8s_dir() -> PathBuf {
    workspace_dir().join("deploy/k8s")
}

/// The tool `program` (named by the environment variable `env`, else found
/// on PATH), or `None` (after saying why) when there is none and this is
/// not CI; under CI its absence fails the test.
fn tool(program: &str, env: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
    });
    if found.is_none() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !in_ci,
            "{program} is not on PATH, so deploy/k8s cannot be checked. \
             .ci/run installs it ({install}); install it, or name it with {env}"
        );
        eprintln!(
            "SKIPPED: {program} is not on PATH, so deploy/k8s is not checked with it \
             ({install}, or set {env}; under CI this fails instead)"
        );
    }
    found
}

/// The kubectl to render with.
fn kubectl() -> Option<PathBuf> {
    tool("kubectl", "KUBECTL", "apt-get install kubectl")
}

/// `kubectl kustomize deploy/k8s/<overlay>`, parsed: one JSON value per
/// object.
fn render(kubectl: &Path, overlay: &str) -> Vec<Value> {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(k8s_dir().join(overlay))
        .stdin(Stdio::null())
        .output()
        .expect("running kubectl");
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/k8s/{overlay} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("kustomize prints UTF-8");
    let objects: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("kustomize prints YAML"))
        .filter(|v| !v.is_null())
        .collect();
    assert!(!objects.is_empty(), "deploy/k8s/{overlay} renders nothing");
    objects
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"]
        .as_str()
        .expect("every object has a name")
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A map of string labels.
fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag` in `args` (`--flag value`), every occurrence.
fn flag_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

/// The one value of `flag`, which must be there exactly once.
fn flag<'a>(args: &'a [String], flag: &str, what: &str) -> &'a str {
    match flag_values(args, flag).as_slice() {
        [one] => one,
        other => panic!("{what}: expected `{flag}` once in {args:?}, found {other:?}"),
    }
}

/// The port of a `host:port` address.
fn port_of(address: &str, what: &str) -> u64 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{what}: `{address}` is not host:port"))
}

/// A memory quantity (`48Mi`, `1Gi`, plain bytes) in bytes.
fn memory_bytes(quantity: &str) -> u64 {
    let units = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    for (suffix, factor) in units {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return n.parse::<u64>().expect("a memory quantity") * factor;
        }
    }
    quantity.parse().expect("a memory quantity in bytes")
}

/// A CPU quantity (`10m`, `1`, `2`) in millicores.
fn cpu_millis(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(m) => m.parse().expect("a CPU quantity"),
        None => quantity.parse::<u64>().expect("a CPU quantity") * 1000,
    }
}

/// The one container of a pod template with this name.
fn container<'a>(deployment: &'a Value, container: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .unwrap_or_else(|| panic!("{}: no container `{container}`", name(deployment)))
}

fn container_ports(container: &Value) -> BTreeSet<u64> {
    container["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["containerPort"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// The Deployments whose pods a Service's selector picks.
fn selected<'a>(objects: &'a [Value], service: &Value) -> Vec<&'a Value> {
    let selector = labels(&service["spec"]["selector"]);
    assert!(
        !selector.is_empty(),
        "Service {} selects nothing",
        name(service)
    );
    of_kind(objects, "Deployment")
        .filter(|d| {
            let pod = labels(&d["spec"]["template"]["metadata"]["labels"]);
            selector.iter().all(|(k, v)| pod.get(k) == Some(v))
        })
        .collect()
}

/// The one port of a Service: `(port, targetPort)`.
fn service_port(service: &Value) -> (u64, u64) {
    let ports = service["spec"]["ports"].as_array().expect("Service ports");
    assert_eq!(ports.len(), 1, "Service {} has one port", name(service));
    let port = ports[0]["port"].as_u64().expect("a numeric port");
    let target = ports[0]["targetPort"]
        .as_u64()
        .unwrap_or_else(|| panic!("Service {}: give targetPort as a number", name(service)));
    (port, target)
}

/// What an emulator Deployment serves, read from its container's arguments.
#[derive(Debug)]
enum Serves {
    /// `run <package> --bind <addr> --id <id>`.
    Run {
        package: String,
        bind: String,
        id: String,
    },
    /// `fleet --package … --count N --id-prefix P --base-port B …`.
    Fleet {
        package: String,
        ids: Vec<String>,
        /// Emulator i's port: `base_port + i - 1`.
        base_port: u64,
        admin: u64,
        injector: u64,
    },
}

impl Serves {
    fn read(deployment: &Value) -> Serves {
        let what = format!("Deployment {}", name(deployment));
        let args = strings(&container(deployment, "emulator")["args"]);
        match args.first().map(String::as_str) {
            Some("run") => Serves::Run {
                package: args.get(1).cloned().expect("run's package"),
                bind: flag(&args, "--bind", &what).to_owned(),
                id: flag(&args, "--id", &what).to_owned(),
            },
            Some("fleet") => {
                let count: usize = flag(&args, "--count", &what).parse().expect("--count N");
                let prefix = flag(&args, "--id-prefix", &what);
                assert_eq!(
                    flag(&args, "--bind-host", &what),
                    "0.0.0.0",
                    "{what}: a fleet in a pod listens on every interface"
                );
                Serves::Fleet {
                    package: flag(&args, "--package", &what).to_owned(),
                    ids: (1..=count).map(|i| format!("{prefix}{i}")).collect(),
                    base_port: flag(&args, "--base-port", &what)
                        .parse()
                        .expect("--base-port"),
                    admin: port_of(flag(&args, "--admin", &what), &what),
                    injector: port_of(flag(&args, "--injector", &what), &what),
                }
            }
            other => panic!("{what}: the emulator container runs {other:?}, not run or fleet"),
        }
    }

    /// `(id, port)` of every emulator served.
    fn emulators(&self) -> Vec<(String, u64)> {
        match self {
            Serves::Run { bind, id, .. } => vec![(id.clone(), port_of(bind, id))],
            Serves::Fleet { ids, base_port, .. } => ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), base_port + i as u64))
                .collect(),
        }
    }
}

/// The checks every emulator pod shares (the base's settings).
fn check_emulator_pod(deployment: &Value) {
    let what = format!("Deployment {}", name(deployment));
    let pod = &deployment["spec"]["template"]["spec"];
    let emulator = container(deployment, "emulator");
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "{what}: non-root"
    );
    let security = &emulator["securityContext"];
    assert_eq!(
        security["readOnlyRootFilesystem"], true,
        "{what}: read-only root"
    );
    assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
    assert!(
        emulator["image"].as_str().is_some_and(|i| !i.is_empty()),
        "{what}: an image"
    );
    // /dev/shm: a memory-backed emptyDir with a size limit.
    let mounts = emulator["volumeMounts"].as_array().expect("volume mounts");
    let shm = mounts
        .iter()
        .find(|m| m["mountPath"] == "/dev/shm")
        .unwrap_or_else(|| panic!("{what}: nothing mounted at /dev/shm"));
    let volume = pod["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == shm["name"]))
        .unwrap_or_else(|| panic!("{what}: the /dev/shm volume is not declared"));
    assert_eq!(
        volume["emptyDir"]["medium"], "Memory",
        "{what}: /dev/shm in memory"
    );
    assert!(
        volume["emptyDir"]["sizeLimit"].is_string(),
        "{what}: /dev/shm has a size limit"
    );
    // Resources: requests and limits, requests no larger.
    let resources = &emulator["resources"];
    for (kind, parse) in [
        ("memory", memory_bytes as fn(&str) -> u64),
        ("cpu", cpu_millis),
    ] {
        let request = resources["requests"][kind].as_str();
        let limit = resources["limits"][kind].as_str();
        let (Some(request), Some(limit)) = (request, limit) else {
            panic!("{what}: {kind} request and limit are both set")
        };
        assert!(
            parse(request) <= parse(limit),
            "{what}: {kind} request {request} is over its limit {limit}"
        );
    }
}

/// Probes: `GET /state` on one of the ports the pod's emulators bind.
fn check_probes(deployment: &Value, emulator_ports: &BTreeSet<u64>) {
    let emulator = container(deployment, "emulator");
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &emulator[probe]["httpGet"];
        let what = format!("Deployment {}: {probe}", name(deployment));
        assert_eq!(get["path"], "/state", "{what} asks GET /state");
        let port = get["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: a numeric port"));
        assert!(
            emulator_ports.contains(&port),
            "{what} asks port {port}, where no emulator listens ({emulator_ports:?})"
        );
    }
}

/// Everything one rendered overlay must satisfy; returns what its emulator
/// Deployments serve, for the dry runs.
fn check_overlay(overlay: &str, objects: &[Value]) -> Vec<Serves> {
    let mut served = Vec::new();
    let mut ids: BTreeMap<String, (String, u64)> = BTreeMap::new(); // id -> (deployment, port)
    let emulators = of_kind(objects, "Deployment").filter(|d| {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "emulator"
    });
    for deployment in emulators {
        check_emulator_pod(deployment);
        let serves = Serves::read(deployment);
        let container = container(deployment, "emulator");
        let declared = container_ports(container);
        let mut ports = BTreeSet::new();
        for (id, port) in serves.emulators() {
            assert!(
                declared.contains(&port),
                "{overlay}: emulator {id} binds port {port}, which Deployment {} does not declare",
                name(deployment)
            );
            assert!(
                ports.insert(port),
                "{overlay}: two emulators on port {port}"
            );
            let before = ids.insert(id.clone(), (name(deployment).to_owned(), port));
            assert!(
                before.is_none(),
                "{overlay}: emulator id {id} is served twice"
            );
        }
        check_probes(deployment, &ports);
        match &serves {
            Serves::Run { package, id, .. } => {
                assert!(
                    package.starts_with(IMAGE_PACKAGES),
                    "{overlay}: {id} runs {package}"
                );
                assert_eq!(
                    name(deployment),
                    id,
                    "{overlay}: a single emulator's Deployment is named after its id"
                );
            }
            Serves::Fleet {
                package,
                admin,
                injector,
                ..
            } => {
                assert!(
                    package.starts_with(IMAGE_PACKAGES),
                    "{overlay}: fleet runs {package}"
                );
                for (what, port) in [("admin", admin), ("injector", injector)] {
                    assert!(
                        !ports.contains(port),
                        "{overlay}: the fleet's {what} port {port} is also an emulator's"
                    );
                    assert!(
                        declared.contains(port),
                        "{overlay}: {what} port {port} not declared"
                    );
                }
                let injector_service = service(objects, overlay, INJECTOR_SERVICE);
                assert_eq!(
                    service_port(injector_service),
                    (INJECTOR_PORT, *injector),
                    "{overlay}: {INJECTOR_SERVICE} reaches the fleet's injector"
                );
            }
        }
        served.push(serves);
    }
    assert!(!ids.is_empty(), "{overlay}: no emulator Deployment");
    // Every emulator id: its Service on 5001, selecting the one Deployment
    // that serves it, targeting its port.
    for (id, (deployment, port)) in &ids {
        let service = service(objects, overlay, id);
        assert_eq!(
            service_port(service),
            (EMULATOR_PORT, *port),
            "{overlay}: Service {id} answers on {EMULATOR_PORT} and targets the port {id} binds"
        );
        let picks: Vec<&str> = selected(objects, service).into_iter().map(name).collect();
        assert_eq!(
            picks,
            [deployment.as_str()],
            "{overlay}: Service {id} selects exactly the Deployment that serves {id}"
        );
    }
    // Every Service of an emulator is for an emulator that is served.
    for service in of_kind(objects, "Service") {
        if service["metadata"]["labels"]["app.kubernetes.io/component"] == "emulator"
            && !ids.contains_key(name(service))
        {
            let (port, _) = service_port(service);
            assert_ne!(
                port,
                EMULATOR_PORT,
                "{overlay}: Service {} serves no emulator",
                name(service)
            );
        }
    }
    check_injector(overlay, objects, &ids);
    served
}

fn service<'a>(objects: &'a [Value], overlay: &str, wanted: &str) -> &'a Value {
    let found: Vec<&Value> = of_kind(objects, "Service")
        .filter(|s| name(s) == wanted)
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "{overlay}: expected one Service {wanted}, found {}",
            found.len()
        ),
    }
}

/// A standalone injector (if the overlay has one) knows every emulator at
/// its Service's address, and its Service reaches the port it binds.
fn check_injector(overlay: &str, objects: &[Value], ids: &BTreeMap<String, (String, u64)>) {
    let injectors: Vec<&Value> = of_kind(objects, "Deployment")
        .filter(|d| {
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "injector"
        })
        .collect();
    for deployment in injectors {
        let what = format!("{overlay}: Deployment {}", name(deployment));
        let args = strings(&container(deployment, "injector")["args"]);
        assert_eq!(args.first().map(String::as_str), Some("injector"), "{what}");
        let bind = port_of(flag(&args, "--bind", &what), &what);
        assert!(
            container_ports(container(deployment, "injector")).contains(&bind),
            "{what}"
        );
        let injector_service = service(objects, overlay, INJECTOR_SERVICE);
        assert_eq!(
            service_port(injector_service),
            (INJECTOR_PORT, bind),
            "{what}"
        );
        let picks: Vec<&str> = selected(objects, injector_service)
            .into_iter()
            .map(name)
            .collect();
        assert_eq!(picks, [name(deployment)], "{what}: its Service selects it");
        let named: BTreeMap<&str, &str> = flag_values(&args, "--emulator")
            .into_iter()
            .map(|e| {
                e.split_once('=')
                    .unwrap_or_else(|| panic!("{what}: `{e}` is not id=url"))
            })
            .collect();
        let expected: BTreeMap<&str, String> = ids
            .keys()
            .map(|id| (id.as_str(), format!("http://{id}:{EMULATOR_PORT}")))
            .collect();
        let named: BTreeMap<&str, String> =
            named.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        assert_eq!(
            named, expected,
            "{what}: names every emulator at its Service"
        );
    }
}

/// The real packages, assembled once per name from this build (what
/// ci/vcc-package.sh places and the image bakes in).
struct Packages(BTreeMap<String, TempDir>);

impl Packages {
    fn path(&mut self, image_path: &str) -> PathBuf {
        let package = image_path
            .strip_prefix(IMAGE_PACKAGES)
            .unwrap_or_else(|| panic!("{image_path} is not under {IMAGE_PACKAGES}"));
        let config = workspace_dir()
            .join("fixtures")
            .join(package)
            .join("emulators/config.json");
        let dir = self.0.entry(package.to_owned()).or_insert_with(|| {
            let text = std::fs::read_to_string(&config).unwrap_or_else(|e| {
                panic!(
                    "{image_path}: the image's package comes from {}: {e}",
                    config.display()
                )
            });
            plugin_package(&text)
        });
        dir.path().to_path_buf()
    }
}

/// Runs the real binary; returns its standard output, which must be a
/// success.
fn run_binary(args: &[String]) -> String {
    let output = Command::new(BINARY)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running bitstream-emulator");
    assert!(
        output.status.success(),
        "bitstream-emulator {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A container's arguments with the image's package path replaced by the
/// real package's folder.
fn mapped(args: &[String], packages: &mut Packages) -> Vec<String> {
    args.iter()
        .map(|a| {
            if a.starts_with(IMAGE_PACKAGES) {
                packages.path(a).display().to_string()
            } else {
                a.clone()
            }
        })
        .collect()
}

fn emulator_args(objects: &[Value]) -> Vec<(String, Vec<String>)> {
    of_kind(objects, "Deployment")
        .filter_map(|d| {
            let containers = d["spec"]["template"]["spec"]["containers"].as_array()?;
            containers
                .iter()
                .find(|c| c["name"] == "emulator" || c["name"] == "injector")
                .map(|c| (name(d).to_owned(), strings(&c["args"])))
        })
        .collect()
}

/// The subcommands `bitstream-emulator --help` lists.
fn subcommands() -> BTreeSet<String> {
    let help = run_binary(&["--help".to_owned()]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn every_folder_with_a_kustomization_is_an_overlay_or_a_part() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(k8s_dir()).expect("deploy/k8s") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            found.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let known: BTreeSet<String> = OVERLAYS
        .iter()
        .chain(PARTS)
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        found, known,
        "deploy/k8s: every folder is an overlay this test renders or a part of one"
    );
    for overlay in OVERLAYS {
        assert!(
            k8s_dir().join(overlay).join("kustomization.yaml").is_file(),
            "deploy/k8s/{overlay}/kustomization.yaml"
        );
    }
    // The image the manifests run: its packages where they look for them,
    // a non-root user, the emulator's and the injector's ports.
    let dockerfile =
        std::fs::read_to_string(workspace_dir().join("Dockerfile")).expect("Dockerfile");
    for wanted in [IMAGE_PACKAGES, "USER 10001:10001", "EXPOSE 5001 5002"] {
        assert!(
            dockerfile.contains(wanted),
            "the Dockerfile has no `{wanted}`"
        );
    }
}

#[test]
fn every_overlay_renders_and_its_ids_ports_and_probes_agree() {
    let Some(kubectl) = kubectl() else { return };
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        let served = check_overlay(overlay, &objects);
        let expected_ids: usize = match *overlay {
            "fleet-200" => 200,
            _ => 2,
        };
        let ids: usize = served.iter().map(|s| s.emulators().len()).sum();
        assert_eq!(ids, expected_ids, "{overlay}: emulators served");
    }
}

/// The Kubernetes version whose API schemas the objects must pass (and
/// every later one keeps these fields).
const SCHEMA_VERSION: &str = "1.30.0";

#[test]
fn every_overlay_passes_the_kubernetes_api_schemas() {
    let Some(kubectl) = kubectl() else { return };
    let Some(validate) = tool(
        "kubernetes-validate",
        "KUBERNETES_VALIDATE",
        "pip install kubernetes-validate",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a tempdir");
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        let file = dir.path().join(format!("{overlay}.json"));
        // One JSON document per line: YAML, which the validator reads.
        let text: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
        std::fs::write(&file, text).expect("writing the rendered objects");
        let output = Command::new(&validate)
            .args([
                "--strict",
                "--quiet",
                "--kubernetes-version",
                SCHEMA_VERSION,
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("running kubernetes-validate");
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !said.contains("ERROR"),
            "deploy/k8s/{overlay} does not pass the Kubernetes {SCHEMA_VERSION} schemas: {said}"
        );
    }
}

#[test]
fn the_download_component_replaces_the_package_the_emulator_reads() {
    let Some(kubectl) = kubectl() else { return };
    let objects = render(&kubectl, "per-emulator-download");
    let config_maps: Vec<&Value> = of_kind(&objects, "ConfigMap").collect();
    for deployment in of_kind(&objects, "Deployment") {
        let what = format!("Deployment {}", name(deployment));
        let pod = &deployment["spec"]["template"]["spec"];
        let init = pod["initContainers"].as_array().and_then(|i| i.first());
        if deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            != "emulator"
        {
            assert!(init.is_none(), "{what}: only emulators download a package");
            continue;
        }
        let init = init.unwrap_or_else(|| panic!("{what}: no init container"));
        let Serves::Run { package, .. } = Serves::read(deployment) else {
            panic!("{what}: runs one emulator")
        };
        // The emulator reads the package from the volume the download fills.
        let emulator = container(deployment, "emulator");
        let mount = emulator["volumeMounts"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["mountPath"] == package.as_str()))
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {package}"));
        let filled = init["volumeMounts"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["name"] == mount["name"]));
        assert!(
            filled,
            "{what}: the init container writes the volume at {package}"
        );
        // Its URL comes from a ConfigMap that is rendered and holds one.
        let from = init["envFrom"][0]["configMapRef"]["name"]
            .as_str()
            .expect("envFrom");
        let map = config_maps
            .iter()
            .find(|m| name(m) == from)
            .unwrap_or_else(|| panic!("{what}: ConfigMap {from} is not rendered"));
        assert!(map["data"]["PACKAGE_URL"]
            .as_str()
            .is_some_and(|u| u.ends_with(".tar.gz")));
    }
}

#[test]
fn run_arguments_parse_and_load_the_package_with_the_real_cli() {
    let Some(kubectl) = kubectl() else { return };
    let mut packages = Packages(BTreeMap::new());
    let mut runs = 0;
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        for (deployment, args) in emulator_args(&objects) {
            if args.first().map(String::as_str) != Some("run") {
                continue;
            }
            let Serves::Run { bind, id, .. } = Serves::read(
                of_kind(&objects, "Deployment")
                    .find(|d| name(d) == deployment)
                    .unwrap(),
            ) else {
                unreachable!("a run container")
            };
            let mut args = mapped(&args, &mut packages);
            args.push("--dry-run".to_owned());
            let printed: Value =
                serde_json::from_str(run_binary(&args).trim()).unwrap_or_else(|e| {
                    panic!("{overlay}/{deployment}: run --dry-run prints JSON: {e}")
                });
            assert_eq!(
                printed["id"],
                id.as_str(),
                "{overlay}/{deployment}: the id served"
            );
            assert_eq!(
                printed["bind"],
                bind.as_str(),
                "{overlay}/{deployment}: the address"
            );
            runs += 1;
        }
    }
    assert_eq!(runs, 4, "two run Deployments in each of two overlays");
}

/// The generated files of the fleet overlays are what
/// deploy/k8s/fleet-manifests.sh writes for their counts.
#[test]
fn fleet_overlays_hold_what_their_generator_writes() {
    for (overlay, count) in [("fleet", 2), ("fleet-200", 200)] {
        let out = tempfile::tempdir().expect("a tempdir");
        let status = Command::new("bash")
            .arg(k8s_dir().join("fleet-manifests.sh"))
            .arg(count.to_string())
            .arg(out.path())
            .status()
            .expect("running fleet-manifests.sh");
        assert!(status.success(), "fleet-manifests.sh {count}");
        for file in ["services.yaml", "container-ports.yaml"] {
            let committed = std::fs::read_to_string(k8s_dir().join(overlay).join(file))
                .expect("a generated file");
            let written = std::fs::read_to_string(out.path().join(file)).expect("written");
            assert!(
                committed == written,
                "deploy/k8s/{overlay}/{file} is stale: run deploy/k8s/fleet-manifests.sh {count} deploy/k8s/{overlay}"
            );
        }
    }
}

/// `fleet` and `injector` arguments as the manifests give them, run by the
/// real binary once it has those commands (its `--help` lists them): every
/// flag must be one the command knows, and `fleet … --dry-run` must load
/// the package and name every emulator id.
#[test]
fn fleet_and_injector_arguments_parse_with_the_real_cli() {
    let Some(kubectl) = kubectl() else { return };
    let commands = subcommands();
    assert!(commands.contains("run"), "--help lists run: {commands:?}");
    let mut packages = Packages(BTreeMap::new());
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        for (deployment, args) in emulator_args(&objects) {
            let Some(command) = args.first().filter(|c| *c == "fleet" || *c == "injector") else {
                continue;
            };
            assert!(
                commands.contains(command.as_str()),
                "{overlay}/{deployment}: the binary has no `{command}` command: {commands:?}"
            );
            let help = run_binary(&[command.clone(), "--help".to_owned()]);
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                assert!(
                    help.contains(flag.as_str()),
                    "{overlay}/{deployment}: `{command} --help` knows no {flag}"
                );
            }
            if command == "fleet" {
                let mut args = mapped(&args, &mut packages);
                args.push("--dry-run".to_owned());
                let printed = run_binary(&args);
                let Serves::Fleet { ids, .. } = Serves::read(
                    of_kind(&objects, "Deployment")
                        .find(|d| name(d) == deployment)
                        .unwrap(),
                ) else {
                    unreachable!("a fleet container")
                };
                for id in ids {
                    assert!(
                        printed.contains(&format!("\"{id}\"")),
                        "{overlay}: fleet --dry-run does not name {id}: {printed}"
                    );
                }
            }
        }
    }
}

/// `run --dry-run` never listens (its address may be taken) and refuses a
/// package it cannot load, naming it, as `run` does.
#[test]
fn dry_run_checks_the_package_without_listening() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let bind = taken.local_addr().expect("its address").to_string();
    let mut packages = Packages(BTreeMap::new());
    let package = packages.path("/opt/bitstream/packages/vcc_processing");
    let printed = run_binary(&[
        "run".to_owned(),
        package.display().to_string(),
        "--bind".to_owned(),
        bind.clone(),
        "--dry-run".to_owned(),
    ]);
    let printed: Value = serde_json::from_str(printed.trim()).expect("one JSON line");
    assert_eq!(printed["bind"], bind.as_str());
    assert_eq!(
        printed["id"], "vcc_processing",
        "without --id: the config's id"
    );

    let empty = tempfile::tempdir().expect("a tempdir");
    let output = Command::new(BINARY)
        .args(["run", "--dry-run"])
        .arg(empty.path())
        .stdin(Stdio::null())
        .output()
        .expect("running bitstream-emulator");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an empty folder is no package");
    assert!(
        output.stdout.is_empty(),
        "nothing printed on stdout: {stderr}"
    );
    assert!(
        stderr.contains(&empty.path().display().to_string()),
        "the error names the package: {stderr}"
    );
}
