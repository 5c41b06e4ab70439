//! A real SMTP listener on 127.0.0.1 for the notify tests: the `mailin` crate's SMTP state
//! machine (greeting, EHLO, AUTH PLAIN, MAIL, RCPT, DATA with dot-unstuffing, QUIT) behind
//! a blocking TCP accept loop. It records every accepted message and can be told to refuse.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mailin::{AuthMechanism, Handler, Response, SessionBuilder, response};

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// The credentials the client authenticated with, if any.
    pub auth: Option<(String, String)>,
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 550 to every recipient: refused for good. (At RCPT rather than at the end of DATA:
    /// mailin stays in its DATA state after an error reply there.)
    Refuse,
}

#[derive(Clone)]
struct Capture {
    inbox: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    credentials: Option<(String, String)>,
    auth: Option<(String, String)>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Capture {
    fn rcpt(&mut self, _to: &str) -> Response {
        match *self.mode.lock().unwrap() {
            Mode::Accept => response::OK,
            Mode::Refuse => response::NO_MAILBOX,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.inbox.lock().unwrap().push(Received {
            from: self.from.clone(),
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
            auth: self.auth.clone(),
        });
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if u == user && p == password => {
                self.auth = Some((user.to_string(), password.to_string()));
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

/// The running server. Its thread ends with the test process.
pub struct SmtpServer {
    pub addr: SocketAddr,
    inbox: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
}

impl SmtpServer {
    /// Starts a server; with `credentials`, it offers AUTH PLAIN and accepts only those.
    pub fn start(credentials: Option<(&str, &str)>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP listener");
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let handler = Capture {
            inbox: inbox.clone(),
            mode: mode.clone(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            auth: None,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut builder = SessionBuilder::new("smtp.test");
        if credentials.is_some() {
            builder
                .enable_auth(AuthMechanism::Plain)
                // The test server has no certificate; the client is configured for `none`.
                .insecure_enable_plaintext_auth();
        }
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let builder = builder.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &builder, handler);
                });
            }
        });
        SmtpServer { addr, inbox, mode }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, builder: &SessionBuilder, handler: Capture) -> std::io::Result<()> {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut session = builder.build(peer, handler);
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let reply = session.process(&line);
        match reply.action {
            mailin::Action::Reply => reply.write_to(&mut writer)?,
            mailin::Action::Close => {
                reply.write_to(&mut writer)?;
                return Ok(());
            }
            mailin::Action::UpgradeTls => return Ok(()),
            mailin::Action::NoReply => {}
        }
    }
}

/// The decoded parts of a multipart message: (content type line, body).
pub fn parts(data: &str) -> Vec<(String, String)> {
    let boundary = data
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a multipart boundary");
    data.split(&format!("--{boundary}"))
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| {
            let (headers, body) = part
                .trim_start_matches("\r\n")
                .split_once("\r\n\r\n")
                .expect("part headers");
            let content_type = header(headers, "Content-Type").unwrap_or_default();
            let encoding = header(headers, "Content-Transfer-Encoding").unwrap_or_default();
            let body = body.trim_end_matches("\r\n");
            (content_type, decode(&encoding, body))
        })
        .collect()
}

/// A header's value (unfolded) from a header block.
pub fn header(block: &str, name: &str) -> Option<String> {
    let unfolded = block.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

fn decode(encoding: &str, body: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut n = 0;
            while n < bytes.len() {
                if bytes[n] == b'=' && n + 2 < bytes.len() + 1 {
                    let hex = std::str::from_utf8(&bytes[n + 1..(n + 3).min(bytes.len())]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("QP escape"));
                    n += 3;
                } else {
                    out.push(bytes[n]);
                    n += 1;
                }
            }
            String::from_utf8(out).expect("utf-8")
        }
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64"),
            )
            .expect("utf-8")
        }
        _ => body.to_string(),
    }
}
