//! Operators' attachments: the file shapes of ONIMCONNECTORMESSAGEADD (undocumented; fact sheet
//! §11: `files[j][name|link|type|size|mime|downloadLink]`) and `GET /rest/download.json?token=…`,
//! which serves their bytes.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::Shared;
use super::state::PortalState;

/// A file an operator attaches (see [`super::FakePortal::operator_message_with_files`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeFile {
    pub name: String,
    /// Bitrix24's kind: `image`, `file`, `video` or `audio`.
    pub kind: String,
    pub mime: String,
    pub content: Vec<u8>,
    /// Send an absolute `link` beside the portal-relative `downloadLink` (some captures carry
    /// only the latter).
    pub with_link: bool,
}

/// Store the files' bytes under fresh tokens and describe them as Bitrix24 does.
pub(crate) fn describe(st: &mut PortalState, portal_url: &str, files: &[FakeFile]) -> Value {
    let described: Vec<Value> = files
        .iter()
        .map(|f| {
            let id = st.next_message_id();
            let token = format!("{}{id}", super::config::random_hex());
            let download = format!("/rest/download.json?token={token}");
            st.downloads
                .insert(token, (f.mime.clone(), f.content.clone()));
            let mut file = json!({
                "id": id,
                "name": f.name,
                "type": f.kind,
                "size": f.content.len(),
                "mime": f.mime,
                "downloadLink": download,
            });
            if f.with_link {
                file["link"] = json!(format!("{portal_url}{download}&show=1"));
            }
            file
        })
        .collect();
    json!(described)
}

#[derive(serde::Deserialize)]
pub(crate) struct DownloadQuery {
    token: String,
}

/// `GET /rest/download.json?token=…`: the file's bytes, or 404.
pub(crate) async fn download(
    shared: web::Data<Shared>,
    query: web::Query<DownloadQuery>,
) -> HttpResponse {
    let found = shared.lock().downloads.get(&query.token).cloned();
    match found {
        Some((mime, content)) => HttpResponse::Ok().content_type(mime).body(content),
        None => HttpResponse::NotFound().body("File not found"),
    }
}
