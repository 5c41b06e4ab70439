//! The import page's upload: the multipart form's `csrf` and `file` fields, the file streamed
//! to a temporary file under its own limit (`admin.import_max_bytes`), never held whole in
//! memory. `server.body_limit_bytes` does not apply to this route (a real export is far
//! larger than a form).

use std::path::PathBuf;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use axum::response::Response;
use tokio::io::AsyncWriteExt;

/// The most any field besides the file may hold (the CSRF token is 64 characters).
const MAX_FIELD_BYTES: usize = 4096;

/// An export file on disk, deleted when dropped.
pub struct StoredFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub bytes: u64,
}

/// The received form.
pub struct Upload {
    pub csrf: String,
    pub file: Option<StoredFile>,
}

/// Why an upload was refused: the page to show.
pub struct Refused(pub Response);

fn unreadable(error: MultipartError) -> Refused {
    Refused(super::pages::error_page(
        error.status(),
        &format!("The upload could not be read: {}", error.body_text()),
    ))
}

fn internal(error: std::io::Error) -> Refused {
    tracing::error!(%error, "storing an uploaded export file failed");
    Refused(super::pages::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The upload could not be stored on the server.",
    ))
}

/// Reads the form, the file to disk; more than `max_file_bytes` of file is refused (413)
/// with a message naming `admin.import_max_bytes`.
pub async fn receive(multipart: &mut Multipart, max_file_bytes: u64) -> Result<Upload, Refused> {
    let mut upload = Upload {
        csrf: String::new(),
        file: None,
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() == Some("file") {
            let dir = tempfile::tempdir().map_err(internal)?;
            let path = dir.path().join("admin-export.csv");
            let file = tokio::fs::File::create(&path).await.map_err(internal)?;
            let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            let mut bytes = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                bytes += chunk.len() as u64;
                if bytes > max_file_bytes {
                    return Err(Refused(super::pages::error_page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "The file is larger than admin.import_max_bytes ({max_file_bytes} bytes). Raise admin.import_max_bytes in the configuration, or plan from the file with `reseat sweep plan --source csv:FILE`."
                        ),
                    )));
                }
                out.write_all(&chunk).await.map_err(internal)?;
            }
            out.flush().await.map_err(internal)?;
            upload.file = Some(StoredFile {
                _dir: dir,
                path,
                bytes,
            });
            continue;
        }
        let csrf = field.name() == Some("csrf");
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if text.len() + chunk.len() > MAX_FIELD_BYTES {
                return Err(Refused(super::pages::error_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "A form field besides the file is too long.",
                )));
            }
            text.extend_from_slice(&chunk);
        }
        if csrf {
            upload.csrf = String::from_utf8_lossy(&text).into_owned();
        }
    }
    Ok(upload)
}
