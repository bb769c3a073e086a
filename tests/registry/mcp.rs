//! `aelimg push` of an image with an `mcp:` section writes the MCP
//! registry's server.json: valid against the registry's published schema
//! (fixtures/mcp-registry, judged by Python's `jsonschema`), its identifier
//! the pushed index by digest (as skopeo reads it), its name the
//! `io.modelcontextprotocol.server.name` label skopeo reads in the config.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::registry::{Auth, Registry};
use crate::common::{aelimg, json, ok, run, scratch};

const SPEC: &str = r#"version: 1
images:
  - name: srv
    tag: "1.0"
    version: "1.2.3"
    platforms: [linux/amd64, linux/arm64]
    user: {name: app, uid: 10001}
    entrypoint: [/bin/srv]
    mcp:
      name: io.github.example/srv
      description: "A test MCP server"
      transport: streamable-http
      url: http://localhost:8080/mcp
      repository: https://github.com/example/srv
      environment_variables:
        - {name: SRV_TOKEN, description: "Bearer token", secret: true}
        - {name: SRV_LOG, default: info}
    layers:
      - name: files
        contents:
          - path: hello.txt
            dest: /srv/hello.txt
  - name: plain
    tag: "1.0"
    platforms: [linux/amd64]
    user: {name: app, uid: 10001}
    entrypoint: [/bin/plain]
"#;

/// Python's jsonschema (Draft 7, the schema's `$schema`) on `doc`; `Err`
/// holds its message. A missing python3 or jsonschema fails the test.
fn validate(doc: &Path) -> Result<(), String> {
    let schema = crate::common::repo().join("fixtures/mcp-registry/server.schema.json");
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
         schema = json.load(open(sys.argv[1]))\n\
         jsonschema.Draft7Validator.check_schema(schema)\n\
         v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())\n\
         errors = [e.message for e in v.iter_errors(json.load(open(sys.argv[2])))]\n\
         print('\\n'.join(errors)); sys.exit(1 if errors else 0)\n",
        )
        .arg(&schema)
        .arg(doc));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "python3 jsonschema is missing (tests/py/requirements.txt installs it): {stderr}"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
    }
}

#[test]
fn push_writes_a_server_json_the_registry_schema_accepts() {
    let dir = scratch("registry-mcp");
    let reg = Registry::start(&dir.join("reg"), false, Auth::Anonymous);
    let spec = dir.join("spec");
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::write(spec.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(spec.join("images.yaml"), SPEC).unwrap();
    let images = dir.join("images");
    ok(aelimg()
        .arg("build")
        .arg("-f")
        .arg(spec.join("images.yaml"))
        .args(["--sbom", "none", "--provenance", "none", "--output"])
        .arg(format!("oci:{}", images.display())));
    let host = reg.host();
    let out_dir = dir.join("mcp");
    ok(aelimg()
        .arg("push")
        .arg(format!("{host}/acme/{{name}}"))
        .arg("--from")
        .arg(format!("oci:{}", images.display()))
        .arg("-f")
        .arg(spec.join("images.yaml"))
        .arg("--server-json")
        .arg(&out_dir));
    assert!(
        !out_dir.join("plain").exists(),
        "an image without mcp: gets no server.json"
    );
    let path = out_dir.join("srv/server.json");
    let doc: Value = json(&std::fs::read_to_string(&path).unwrap());
    validate(&path).unwrap_or_else(|e| panic!("server.json is invalid: {e}\n{doc:#}"));

    let digest = reg.skopeo_digest("acme/srv:1.0");
    let package = &doc["packages"][0];
    assert_eq!(package["registryType"], "oci");
    assert_eq!(
        package["identifier"],
        format!("{host}/acme/srv@{digest}").as_str()
    );
    assert_eq!(package["transport"]["type"], "streamable-http");
    assert_eq!(doc["version"], "1.2.3");
    let config = json(&ok(Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{host}/acme/srv:1.0"))));
    assert_eq!(
        config["config"]["Labels"]["io.modelcontextprotocol.server.name"],
        doc["name"]
    );
    let index = json(&String::from_utf8(reg.skopeo_raw("acme/srv:1.0")).unwrap());
    assert_eq!(
        index["annotations"]["io.modelcontextprotocol.server.name"],
        doc["name"]
    );

    // `build --push` writes one too, for the image it pushed.
    let out_dir = dir.join("mcp-build");
    let stdout = ok(aelimg()
        .arg("build")
        .arg("-f")
        .arg(spec.join("images.yaml"))
        .args(["--sbom", "none", "--provenance", "none", "--image", "srv"])
        .arg("--output")
        .arg(format!("oci:{}", dir.join("images2").display()))
        .arg("--push")
        .arg(format!("{host}/built/{{name}}"))
        .arg("--server-json")
        .arg(&out_dir));
    let built: Value = json(&std::fs::read_to_string(out_dir.join("srv/server.json")).unwrap());
    let pushed = format!("{host}/built/srv@{}", reg.skopeo_digest("built/srv:1.0"));
    assert_eq!(built["packages"][0]["identifier"], pushed.as_str());
    assert!(stdout.contains(&pushed), "{stdout}");
    validate(&out_dir.join("srv/server.json")).unwrap();

    // The judge is awake: a name without `/` and an oci package without
    // an identifier are refused.
    let mut bad = doc.clone();
    bad["name"] = "no-slash".into();
    bad["packages"][0]
        .as_object_mut()
        .unwrap()
        .remove("identifier");
    let bad_path = dir.join("bad-server.json");
    std::fs::write(&bad_path, bad.to_string()).unwrap();
    let e = validate(&bad_path).expect_err("an invalid server.json must fail");
    assert!(e.contains("no-slash"), "{e}");
}
