//! Response envelopes (fact sheet §1.3/§1.4): `result` + `time`, and `{error, error_description}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};

/// A REST error: HTTP status plus the Bitrix24 error code and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: String,
    pub description: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            description: description.into(),
        }
    }

    /// 400 with `code`, the usual status of Bitrix24 method-level errors.
    pub(crate) fn bad(code: &str, description: impl Into<String>) -> Self {
        Self::new(400, code, description)
    }

    /// 400 `ERROR_ARGUMENT` "Argument 'X' is null or empty" (fact sheet §5).
    pub(crate) fn argument(name: &str) -> Self {
        Self::bad(
            "ERROR_ARGUMENT",
            format!("Argument '{name}' is null or empty"),
        )
    }

    /// The `{error, error_description}` body.
    pub(crate) fn body(&self) -> Value {
        json!({"error": self.code, "error_description": self.description})
    }
}

/// `time` block keys for a call that ran from `start` to `finish` (§1.3, without the `operating` pair).
pub(crate) fn time_block(start: SystemTime, finish: SystemTime) -> Map<String, Value> {
    let duration = finish
        .duration_since(start)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    let mut time = Map::new();
    time.insert("start".into(), json!(unix_f64(start)));
    time.insert("finish".into(), json!(unix_f64(finish)));
    time.insert("duration".into(), json!(duration));
    time.insert("processing".into(), json!(duration));
    time.insert("date_start".into(), json!(iso_date(start)));
    time.insert("date_finish".into(), json!(iso_date(finish)));
    time
}

/// Unix time as floating seconds (`start`/`finish` are doubles on the wire).
pub(crate) fn unix_f64(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Whole unix seconds.
pub(crate) fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// `YYYY-MM-DDThh:mm:ss+00:00` (the portal reports its own offset; the fake lives in UTC).
pub(crate) fn iso_date(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}+00:00"),
        None => text,
    }
}

/// HTTP 200 `{"result": .., "time": ..}`.
pub(crate) fn success(result: Value, time: Map<String, Value>) -> HttpResponse {
    json_response(200, &json!({"result": result, "time": time}))
}

/// The error envelope with its HTTP status.
pub(crate) fn error(err: &ApiError) -> HttpResponse {
    json_response(err.status, &err.body())
}

/// Any JSON body with the given status.
pub(crate) fn json_response(status: u16, body: &Value) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// What a reverse proxy in front of a portal answers when the backend is down: HTML, not JSON.
pub(crate) fn bad_gateway() -> HttpResponse {
    HttpResponse::build(StatusCode::BAD_GATEWAY).content_type("text/html; charset=utf-8").body(
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>\
         </center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_numeric_offset() {
        let at = UNIX_EPOCH + Duration::from_secs(1_778_747_192);
        assert_eq!(iso_date(at), "2026-05-14T08:26:32+00:00");
        let block = time_block(at, at + Duration::from_millis(250));
        assert_eq!(block["duration"], json!(0.25));
        assert_eq!(block["start"], json!(1_778_747_192.0));
    }
}
