//! The deletion report of contract §3, shared by `GET /v1/deletions/{id}` and the
//! `deletion.completed` callback so that both are the same object.

use serde_json::{Value, json};

use crate::domain::rfc3339;
use crate::store::{DeletionItem, DeletionRecord};

/// Render a deletion and its items.
pub fn deletion_report(record: &DeletionRecord, items: &[DeletionItem]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "message_id": i.message_id,
                "chat_id": i.chat_id,
                "success": i.success,
                "errors": i.errors,
                "attempts": i.state.attempts,
            })
        })
        .collect();
    json!({
        "deletion_id": record.id,
        "channel": record.channel,
        "status": if record.pending == 0 { "completed" } else { "pending" },
        "created_at": rfc3339(record.created_at_ms),
        "completed_at": record.completed_at_ms.map(rfc3339),
        "items": items,
    })
}
