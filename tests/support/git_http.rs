//! A real git server over smart HTTP for tests: git's own `git http-backend` (CGI) behind a
//! small loopback HTTP server that may demand Basic credentials, as GitHub or Gitea do with a
//! token as the password. It records the `Authorization` headers it was sent, so a test can
//! tell which credentials reached the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use base64::Engine as _;

struct Served {
    root: PathBuf,
    /// `Basic base64(user:password)` every request must carry, when set.
    expected: Option<String>,
    seen: Mutex<Vec<String>>,
}

/// `git http-backend` serving the repositories under a directory on a loopback port.
pub struct GitHttp {
    /// `http://127.0.0.1:PORT`; a repository `DIR/name` is at `{url}/name`.
    pub url: String,
    served: Arc<Served>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHttp {
    /// Serves `root`'s repositories; with `credentials`, every request must carry them as
    /// Basic auth (else 401 with a `WWW-Authenticate` challenge).
    pub fn serve(root: &Path, credentials: Option<(&str, &str)>) -> GitHttp {
        let expected = credentials.map(|(user, password)| {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {pair}")
        });
        let served = Arc::new(Served {
            root: root.to_owned(),
            expected,
            seen: Mutex::new(Vec::new()),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = std_listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = served.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let app = axum::Router::new().fallback(move |req: Request<Body>| {
                    let state = state.clone();
                    async move { handle(&state, req).await }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        GitHttp {
            url: format!("http://{addr}"),
            served,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every `Authorization` header received so far (`-` for a request without one).
    pub fn authorizations(&self) -> Vec<String> {
        self.served.seen.lock().unwrap().clone()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(served: &Served, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    served.seen.lock().unwrap().push(auth.clone());
    if let Some(expected) = &served.expected
        && auth != *expected
    {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .unwrap();
    }
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    cgi(
        &served.root,
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
    )
    .await
}

/// Runs `git http-backend` for one request and turns its CGI reply into a response.
async fn cgi(
    root: &Path,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    use tokio::io::AsyncWriteExt as _;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(&body).await;
    drop(stdin);
    let out = child.wait_with_output().await.expect("git http-backend");
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let Some((end, gap)) = split else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .unwrap();
    };
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&out.stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or("500");
            response = response.status(code.parse::<u16>().unwrap_or(500));
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
        .body(Body::from(out.stdout[end + gap..].to_vec()))
        .unwrap()
}
