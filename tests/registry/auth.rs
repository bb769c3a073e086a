//! Credentials: `aelimg login`, docker config, credential helpers,
//! REGISTRY_AUTH_FILE, and bearer tokens (scopes, mounts, identity tokens)
//! from a token service.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::registry::{
    Auth, IDENTITY_TOKEN, PASSWORD, Registry, TokenService, USER, aelimg_in, b64, docker_config,
    docker_config_with, uploads,
};
use crate::common::{json, run, scratch};
use crate::{assert_success, build_fixture, layout_digest};

/// A registry with TLS and some authentication, and the fixture images.
struct Setup {
    dir: PathBuf,
    reg: Registry,
    images: PathBuf,
}

impl Setup {
    /// `aelimg push HOST/<repo> --image <image>` of the fixture images with
    /// the docker config directory `docker`, the test CA, and `extra` flags.
    fn push(&self, docker: &Path, repo: &str, image: &str, extra: &[&str]) -> Output {
        run(self.push_command(docker, repo, image).args(extra))
    }

    fn push_command(&self, docker: &Path, repo: &str, image: &str) -> Command {
        let mut c = aelimg_in(&self.dir, docker);
        c.args(["push", &format!("{}/{repo}", self.reg.host())])
            .args(["--image", image])
            .arg("--from")
            .arg(format!("oci:{}", self.images.display()))
            .arg("--ca-file")
            .arg(self.reg.ca());
        c
    }

    /// Asserts that skopeo reads `repo`'s `tag` as the fixture's `image`.
    fn assert_pushed(&self, repo_ref: &str, image: &str) {
        assert_eq!(
            self.reg.skopeo_digest(repo_ref),
            layout_digest(&self.images.join(image)),
            "{repo_ref}"
        );
    }
}

#[test]
fn login_writes_the_docker_config_and_a_wrong_password_fails_fast() {
    let dir = scratch("registry-login");
    let reg = Registry::start(&dir.join("reg"), true, Auth::Htpasswd);
    let docker = dir.join("docker-login");
    a_wrong_login_fails_fast(&dir, &reg, &docker);
    the_right_login_is_written_0600(&dir, &reg, &docker);
    let images = build_fixture(&dir, 1024);
    let t = Setup { dir, reg, images };
    a_push_uses_what_login_wrote_and_a_wrong_password_fails_fast(&t, &docker);
    a_missing_credential_helper_is_an_error(&t);
    a_creds_store_is_asked_with_the_server_name(&t);
    registry_auth_file_is_read_without_a_docker_config(&t);
}

/// `aelimg login HOST -u USER --password-stdin` with `password`.
fn login(dir: &Path, reg: &Registry, docker: &Path, password: &str) -> Output {
    let mut child = aelimg_in(dir, docker)
        .args([
            "login",
            &reg.host(),
            "-u",
            USER,
            "--password-stdin",
            "--ca-file",
        ])
        .arg(reg.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A wrong password: exit 1, a clear 401 message, no retry storm, no secret.
fn a_wrong_login_fails_fast(dir: &Path, reg: &Registry, docker: &Path) {
    let before = reg.log_lines().len();
    let start = Instant::now();
    let out = login(dir, reg, docker, "wrong-password");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("aelimg login"), "says what to do: {stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let requests = reg.log_lines().len() - before;
    assert!(requests <= 4, "{requests} requests for one failed login");
    assert!(!docker.join("config.json").exists());
}

/// The right password is checked and written atomically, mode 0600.
fn the_right_login_is_written_0600(dir: &Path, reg: &Registry, docker: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    assert_success(&login(dir, reg, docker, PASSWORD));
    let cfg = json(&std::fs::read_to_string(docker.join("config.json")).unwrap());
    assert_eq!(
        cfg["auths"][&reg.host()]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
    let mode = std::fs::metadata(docker.join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A push with what login wrote works; one with a wrong password in the
/// config fails fast with a 401 message.
fn a_push_uses_what_login_wrote_and_a_wrong_password_fails_fast(t: &Setup, docker: &Path) {
    assert_success(&t.push(docker, "acme/alpha", "alpha", &[]));
    t.assert_pushed("acme/alpha:1.0", "alpha");
    let bad = docker_config(&t.dir.join("bad"), &t.reg.host(), "not-the-password");
    let before = t.reg.log_lines().len();
    let start = Instant::now();
    let out = t.push(&bad, "acme/alpha", "alpha", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401") && stderr.contains(USER), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
    let requests = t.reg.log_lines().len() - before;
    assert!(requests <= 6, "{requests} requests for a refused push");
}

/// A configured credential helper that is missing is an error, not an
/// anonymous push.
fn a_missing_credential_helper_is_an_error(t: &Setup) {
    let helper = t.dir.join("helper");
    std::fs::create_dir_all(&helper).unwrap();
    std::fs::write(
        helper.join("config.json"),
        serde_json::json!({"credHelpers": {t.reg.host(): "aelimg-test-missing"}}).to_string(),
    )
    .unwrap();
    let out = t.push(&helper, "acme/alpha", "alpha", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker-credential-aelimg-test-missing"),
        "{stderr}"
    );
}

/// credsStore: a docker-credential-* program asked with the server name.
fn a_creds_store_is_asked_with_the_server_name(t: &Setup) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = t.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = t.dir.join("helper-asked.txt");
    let script = bin.join("docker-credential-aelimgtest");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat > {}\nprintf '{{\"ServerURL\":\"x\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = t.dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("config.json"),
        serde_json::json!({"credsStore": "aelimgtest"}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    assert_success(&run(t
        .push_command(&store, "helper/alpha", "alpha")
        .env("PATH", &path)));
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), t.reg.host());
    t.assert_pushed("helper/alpha:1.0", "alpha");
}

/// REGISTRY_AUTH_FILE (containers' auth.json), with no docker config.
fn registry_auth_file_is_read_without_a_docker_config(t: &Setup) {
    let auth_json = t.dir.join("auth.json");
    std::fs::write(
        &auth_json,
        serde_json::json!({"auths": {t.reg.host(): {"auth": b64(&format!("{USER}:{PASSWORD}"))}}})
            .to_string(),
    )
    .unwrap();
    assert_success(&run(t
        .push_command(&t.dir.join("no-docker-config"), "authfile/alpha", "alpha")
        .env("REGISTRY_AUTH_FILE", &auth_json)));
    t.assert_pushed("authfile/alpha:1.0", "alpha");
}

#[test]
fn bearer_tokens_are_scoped_per_repository_and_mounts_ask_for_the_source() {
    let dir = scratch("registry-bearer");
    let tokens = TokenService::start(&dir.join("token"));
    let reg = Registry::start(&dir.join("reg"), true, Auth::Token(&tokens));
    let images = build_fixture(&dir, 2 << 20);
    let t = Setup { dir, reg, images };
    let docker = docker_config(&t.dir, &t.reg.host(), PASSWORD);
    a_push_asks_for_pull_and_push_of_its_repository(&t, &tokens, &docker);
    a_mount_asks_for_pull_of_the_source(&t, &tokens, &docker);
    a_wrong_password_asks_the_token_service_once(&t, &tokens);
    an_identity_token_is_traded_never_sent_as_a_password(&t, &tokens);
}

/// `push` of the fixture's beta in 1 MiB chunks with a JSON report.
fn push_beta(t: &Setup, docker: &Path, repo: &str) -> Output {
    t.push(docker, repo, "beta", &["--json", "--chunk-size", "1MiB"])
}

fn a_push_asks_for_pull_and_push_of_its_repository(
    t: &Setup,
    tokens: &TokenService,
    docker: &Path,
) {
    assert_success(&push_beta(t, docker, "acme/beta:1.0"));
    t.assert_pushed("acme/beta:1.0", "beta");
    let log = tokens.log_lines().join("\n");
    assert!(log.contains("repository:acme/beta:pull,push"), "{log}");
}

/// A second repository, in a new process: blobs are mounted, the token
/// names the source repository's pull scope.
fn a_mount_asks_for_pull_of_the_source(t: &Setup, tokens: &TokenService, docker: &Path) {
    let before = t.reg.log_lines().len();
    let out = push_beta(t, docker, "mirror/beta:1.0");
    assert_success(&out);
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report[0]["mounted"], report[0]["blobs"], "{report}");
    let lines = t.reg.log_lines();
    assert!(
        uploads(&lines[before..]).is_empty(),
        "{:#?}",
        &lines[before..]
    );
    let log = tokens.log_lines().join("\n");
    assert!(log.contains("repository:acme/beta:pull\""), "{log}");
    t.assert_pushed("mirror/beta:1.0", "beta");
}

/// A wrong password: the token service says no, once, and aelimg says so.
fn a_wrong_password_asks_the_token_service_once(t: &Setup, tokens: &TokenService) {
    let bad = docker_config(&t.dir.join("bad"), &t.reg.host(), "nope-nope");
    let before = tokens.log_lines().len();
    let out = push_beta(t, &bad, "acme/beta:1.0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("aelimg login"),
        "{stderr}"
    );
    assert!(!stderr.contains("nope-nope"));
    let after = tokens.log_lines().len();
    assert!(after - before <= 2, "{} token requests", after - before);
}

/// An identity token (as `docker login` stores for OAuth registries) is
/// traded at the token service with a refresh-token grant, never sent as a
/// password; a revoked one gives a clear 401, the token nowhere in the output.
fn an_identity_token_is_traded_never_sent_as_a_password(t: &Setup, tokens: &TokenService) {
    let identity = |token: &str, name: &str| {
        docker_config_with(
            &t.dir.join(name),
            &t.reg.host(),
            serde_json::json!({"identitytoken": token}),
        )
    };
    let out = push_beta(t, &identity(IDENTITY_TOKEN, "ident"), "ident/beta:1.0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(IDENTITY_TOKEN));
    let grants: Vec<serde_json::Value> = tokens
        .log_lines()
        .iter()
        .map(|l| json(l))
        .filter(|l| l["grant"] == "refresh_token")
        .collect();
    assert!(
        grants.iter().any(|g| g["authorized"] == true
            && g["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "repository:ident/beta:pull,push")),
        "{grants:?}"
    );
    t.assert_pushed("ident/beta:1.0", "beta");

    let out = push_beta(
        t,
        &identity("revoked-token-xyz", "ident-bad"),
        "ident/beta:1.0",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("revoked-token-xyz"), "{stderr}");
}
